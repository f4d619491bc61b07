"""What a finished job leaves in /opt/ml/output/data: metrics.json, a confusion matrix and learning curves as PNG."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..artifact import write_json_atomic

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "learning_curves.png"


def write_reports(
    out_dir: Path, summary: dict, history: list[dict], labels: list[str], confusion: np.ndarray | None
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / METRICS_FILE, {**summary, "labels": labels, "history": history})
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display in a container
        _plot_curves(out_dir / CURVES_FILE, history)
        if confusion is not None:
            _plot_confusion(out_dir / CONFUSION_FILE, confusion, labels)
    except Exception:  # a plot is worth less than the job: log and carry on
        log.exception("Could not draw the report plots; metrics.json is complete.")


def _plot_curves(path: Path, history: list[dict]) -> None:
    import matplotlib.pyplot as plt

    train = [h for h in history if "train_loss" in h]
    evals = [h for h in history if "eval_loss" in h]
    figure, (loss_axes, metric_axes) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axes.plot([h["step"] for h in train], [h["train_loss"] for h in train], label="train loss")
    loss_axes.plot([h["step"] for h in evals], [h["eval_loss"] for h in evals], "o-", label="validation loss")
    loss_axes.set_xlabel("step")
    loss_axes.set_title("Loss")
    loss_axes.legend()
    for name in ("eval_accuracy", "eval_macro_f1"):
        metric_axes.plot([h["step"] for h in evals], [h[name] for h in evals], "o-", label=name.removeprefix("eval_"))
    metric_axes.set_xlabel("step")
    metric_axes.set_ylim(0, 1.02)
    metric_axes.set_title("Validation")
    metric_axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_confusion(path: Path, confusion: np.ndarray, labels: list[str]) -> None:
    import matplotlib.pyplot as plt

    size = max(4.0, 0.5 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(labels) <= 30:
        for (row, column), count in np.ndenumerate(confusion):
            axes.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                color="white" if count > confusion.max() / 2 else "black",
            )
    axes.set_title("Confusion matrix (validation, best model)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

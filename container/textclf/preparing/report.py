"""What `prepare` leaves beside the channels: report.json, duplicates.jsonl (every row it set aside, and why),
and two plots: labels per split, and token lengths against the recommended `max_length`."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from ..artifact import write_json_atomic
from .inputs import Row
from .split import stratum

log = logging.getLogger(__name__)

REPORT_FILE = "report.json"
DUPLICATES_FILE = "duplicates.jsonl"
LABELS_PLOT = "label_distribution.png"
LENGTHS_PLOT = "token_lengths.png"


def label_counts(rows: list[Row]) -> dict[str, int]:
    counts = Counter(label for row in rows for label in (row.label if isinstance(row.label, list) else [row.label]))
    return dict(sorted(counts.items()))


def write_duplicates(path: Path, entries: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


def write_report(out_dir: Path, report: dict, splits: dict[str, list[Row]], lengths: list[int] | None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display in a container
        _plot_labels(out_dir / LABELS_PLOT, splits)
        plots.append(LABELS_PLOT)
        if lengths:
            _plot_lengths(out_dir / LENGTHS_PLOT, lengths, report["token_lengths"])
            plots.append(LENGTHS_PLOT)
    except Exception:  # a plot is worth less than the channels: log and carry on
        log.exception("Could not draw the report plots; report.json is complete.")
    write_json_atomic(out_dir / REPORT_FILE, {**report, "plots": plots})


def _plot_labels(path: Path, splits: dict[str, list[Row]]) -> None:
    import matplotlib.pyplot as plt

    names = [name for name, rows in splits.items() if rows]
    counts = {name: Counter(stratum(row) for row in splits[name]) for name in names}
    labels = sorted({label for c in counts.values() for label in c})
    width = 0.8 / max(1, len(names))
    figure, axes = plt.subplots(figsize=(max(6.0, 0.6 * len(labels) + 3), 4))
    for offset, name in enumerate(names):
        total = sum(counts[name].values())
        shares = [counts[name][label] / total for label in labels]
        positions = [i + (offset - (len(names) - 1) / 2) * width for i in range(len(labels))]
        axes.bar(positions, shares, width, label=f"{name} ({total})")
    rotate = len(labels) > 6
    axes.set_xticks(range(len(labels)), labels, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    axes.set_ylabel("share of the split's rows")
    axes.set_ylim(0, axes.get_ylim()[1] * 1.25)  # room for the legend above the bars
    axes.set_title("Labels per split")
    axes.legend(loc="upper center", ncols=len(names))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_lengths(path: Path, lengths: list[int], summary: dict) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4))
    low, high = min(lengths), max(lengths)
    bins = range(low, high + 2) if high - low < 60 else 60  # one bar per length while they are few
    axes.hist(lengths, bins=bins, color="tab:blue", align="left" if high - low < 60 else "mid")
    chosen = summary["recommended_max_length"]
    cut = summary["truncated_share"][str(chosen)]
    axes.axvline(chosen, color="tab:red", linestyle="--", label=f"max_length {chosen}: {cut:.1%} cut")
    axes.set_xlabel(f"tokens per text ({summary['tokenizer']})")
    axes.set_ylabel("texts")
    axes.set_title("Token lengths")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

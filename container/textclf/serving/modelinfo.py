"""What the server needs to know about the model before loading it: labels, text limit, multi-label, threshold.

Read from `textclf.json` (written by `train`), else from a plain save_pretrained directory's config.json, so a
model fine-tuned elsewhere serves too. Standard library only: `serve` checks the model with it before gunicorn
starts, so a missing or broken model directory is a one-line message, not a crashing worker.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..artifact import DEFAULT_THRESHOLD, METADATA_FILE, ModelMetadata, find_model_dir
from ..errors import UserError
from ..windows import POLICIES, TRUNCATE, LongTextPolicy

DEFAULT_MAX_LENGTH = 512
_GENERIC_LABEL = re.compile(r"LABEL_\d+")


@dataclass(frozen=True)
class ModelInfo:
    model_dir: Path
    labels: tuple[str, ...]
    max_length: int  # tokens per text, special tokens included: longer texts are cut or refused
    multi_label: bool
    threshold: float
    text_pair: bool
    model_type: str
    long_text: LongTextPolicy = TRUNCATE  # how texts over max_length are read: as the model was trained
    metrics: dict = field(default_factory=dict)  # the scores `train` recorded (validation, validation_int8, ...)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"Cannot read {path}: {exc}.", "Serve a model directory written by `train`.") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object.", "Serve a model directory written by `train`.")
    return data


def _check_readable(model_dir: Path) -> None:
    """Every file must be readable by the uid that serves: otherwise the loaders report a missing file instead."""
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and not os.access(path, os.R_OK):
            stat = path.stat()
            raise UserError(
                f"Permission denied reading {path} (mode {stat.st_mode & 0o777:04o}, owner uid {stat.st_uid}) "
                f"as uid {os.getuid()}.",
                "Make the model files readable by the user that serves (chmod -R a+rX on the model directory), "
                "or serve as their owner.",
            )


def describe_model(root: Path) -> ModelInfo:
    if not root.exists():
        raise UserError(
            f"The model directory {root} does not exist.",
            "SageMaker unpacks ModelDataUrl there; locally, set SAGEMAKER_BASE_DIR to a tree whose model/ holds "
            "the output of `train`.",
        )
    model_dir = find_model_dir(root)
    _check_readable(model_dir)
    config = _read_json(model_dir / "config.json")
    id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    labels = [id2label[i] for i in sorted(id2label)]
    positions = config.get("max_position_embeddings") or config.get("n_positions") or DEFAULT_MAX_LENGTH
    if (model_dir / METADATA_FILE).is_file():
        try:
            meta = ModelMetadata.read(model_dir)
        except UserError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"Cannot read {model_dir / METADATA_FILE}: {exc}.", "Re-run `train`.") from exc
        if len(meta.labels) == len(labels) and all(_GENERIC_LABEL.fullmatch(label) for label in labels):
            labels = list(meta.labels)  # names known at training time win over LABEL_0, LABEL_1, ...
        max_length, multi_label = meta.max_length, meta.multi_label
        threshold, text_pair = meta.threshold, meta.text_pair
        if meta.long_text not in POLICIES:
            raise UserError(
                f"{model_dir / METADATA_FILE} names the long-text policy {meta.long_text!r}; this image knows "
                f"{', '.join(POLICIES)}.",
                "Serve the model with the image version that trained it, or a newer one.",
            )
        long_text = LongTextPolicy(meta.long_text, meta.chunk_stride, meta.max_chunks)
        metrics = meta.metrics if isinstance(meta.metrics, dict) else {}
    else:
        long_text = TRUNCATE
        tokenizer_config = model_dir / "tokenizer_config.json"
        limit = _read_json(tokenizer_config).get("model_max_length") if tokenizer_config.is_file() else None
        max_length = int(limit) if isinstance(limit, (int, float)) and limit < 1e6 else int(positions)
        multi_label = config.get("problem_type") == "multi_label_classification"
        threshold, text_pair = DEFAULT_THRESHOLD, False
        metrics = {}
    if not labels:
        raise UserError(f"{model_dir / 'config.json'} names no labels (id2label).", "Serve a classifier from `train`.")
    # Positions past the model's table do not exist (BERT has an absolute one, GPT-2 too): never exceed them.
    max_length = max(2, min(int(max_length), int(positions)))
    return ModelInfo(
        model_dir,
        tuple(labels),
        max_length,
        multi_label,
        float(threshold),
        text_pair,
        str(config.get("model_type", "")),
        long_text,
        metrics,
    )

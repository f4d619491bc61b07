"""Every training hyperparameter, declared once with its type, default and meaning (README, "Hyperparameters").

Values arrive from hyperparameters.json as strings in whatever spelling the client used; `parse` turns them into
a typed `Hyperparameters` or raises a UserError that names the key, what was given, and what is expected.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..artifact import DEFAULT_THRESHOLD
from ..errors import UserError
from ..windows import DEFAULT_MAX_CHUNKS, POLICIES, LongTextPolicy

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
METRICS = ("macro_f1", "accuracy", "micro_f1", "weighted_f1", "loss")


def _hp(default: Any, help: str, choices: tuple[str, ...] | None = None, minimum: float | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, "minimum": minimum})


@dataclass(frozen=True)
class Hyperparameters:
    # Model and data
    model_name_or_path: str | None = _hp(None, "base model: local directory or hub id; the `model` channel wins")
    text_column: str = _hp("text", "column (CSV) or key (JSON Lines) holding the text")
    text_pair_column: str | None = _hp(None, "column holding a second text, for sentence-pair tasks")
    label_column: str = _hp("label", "column holding the label: a string, an integer, or a list (multi-label)")
    max_length: int = _hp(256, "tokens per window; longer texts are read by the `long_text` policy", minimum=8)
    long_text: str = _hp(
        "chunks",
        "texts over max_length: the first tokens, the first and last tokens, or overlapping windows; saved with "
        "the model and applied by `serve`",
        choices=POLICIES,
    )
    chunk_stride: int | None = _hp(
        None, "chunks: tokens between window starts; unset: three quarters of a window (a quarter overlaps)", minimum=1
    )
    max_chunks: int = _hp(DEFAULT_MAX_CHUNKS, "chunks: most windows read per text (the first ones)", minimum=1)
    validation_split: float = _hp(0.1, "share of `train` held out when no `validation` channel exists", minimum=0)
    multi_label: bool | None = _hp(None, "labels are lists (sigmoid per label); inferred from the data if unset")
    multi_label_threshold: float = _hp(
        DEFAULT_THRESHOLD, "multi-label: a label is predicted when its sigmoid score reaches this; saved with the model"
    )
    # Length
    epochs: float = _hp(3.0, "passes over the training data", minimum=0)
    max_steps: int | None = _hp(None, "optimiser steps; overrides `epochs` when set", minimum=1)
    # Optimiser
    learning_rate: float | None = _hp(
        None, "peak learning rate; 2e-5 for BERT-family models, 5e-5 for GPT-2", minimum=0
    )
    weight_decay: float = _hp(0.01, "AdamW weight decay (not applied to biases and LayerNorm)", minimum=0)
    warmup_ratio: float = _hp(0.06, "share of steps spent warming the learning rate up from 0", minimum=0)
    lr_scheduler: str = _hp("linear", "learning-rate schedule after warm-up", choices=SCHEDULERS)
    per_device_batch_size: int = _hp(32, "texts per forward pass on each device", minimum=1)
    gradient_accumulation_steps: int = _hp(1, "forward passes per optimiser step", minimum=1)
    max_grad_norm: float = _hp(1.0, "gradient clipping norm; 0 turns clipping off", minimum=0)
    precision: str = _hp(
        "auto", "auto: bf16 on GPUs that support it and on CPUs with bf16 instructions, fp32 otherwise",
        choices=PRECISIONS,
    )  # fmt: skip
    seed: int = _hp(42, "seed for data order, initialisation and dropout")
    # Evaluation and selection
    eval_steps: int | None = _hp(None, "optimiser steps between evaluations; unset: once per epoch", minimum=1)
    early_stopping_patience: int | None = _hp(None, "evaluations without improvement before stopping", minimum=1)
    metric_for_best_model: str = _hp("macro_f1", "validation metric that picks the model kept", choices=METRICS)
    evaluate_int8: bool = _hp(
        False, "also score the kept model on validation with int8 linear layers on CPU, as `serve` answers with "
        "TEXTCLF_DTYPE=int8, and the share of labels int8 keeps",
    )  # fmt: skip
    logging_steps: int = _hp(50, "optimiser steps between progress lines", minimum=1)
    # Checkpoints (spot training)
    checkpoint_steps: int = _hp(500, "optimiser steps between checkpoints (also written at every epoch end)", minimum=1)

    @property
    def long_text_policy(self) -> LongTextPolicy:
        return LongTextPolicy(self.long_text, self.chunk_stride, self.max_chunks)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "y", "on"):
        return True
    if lowered in ("false", "0", "no", "n", "off"):
        return False
    raise ValueError


def _parse_int(text: str) -> int:
    value = float(text)  # accepts "3", "3.0", "1e3"
    if not math.isfinite(value) or value != int(value):
        raise ValueError
    return int(value)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError
    return value


_PARSERS = {
    "int": (_parse_int, "an integer"),
    "float": (_parse_float, "a number"),
    "bool": (_parse_bool, "true or false"),
}


def _convert(name: str, raw: str, annotation: str, meta: Mapping[str, Any]) -> Any:
    optional = "None" in annotation
    base_type = annotation.replace("| None", "").strip()
    if optional and raw.strip().lower() in ("", "none", "null"):
        return None
    if base_type == "str":
        value: Any = raw
        choices = meta["choices"]
        if choices and value not in choices:
            hint = difflib.get_close_matches(value, choices, n=1)
            did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
            raise UserError(
                f"Hyperparameter '{name}' is '{raw}', which is not one of {', '.join(choices)}.{did_you_mean}",
                f"Set '{name}' to one of: {', '.join(choices)}.",
            )
        return value
    parse, expected = _PARSERS[base_type]
    try:
        value = parse(raw)
    except ValueError:
        raise UserError(
            f"Hyperparameter '{name}' is '{raw}', which is not {expected}.",
            f"Set '{name}' to {expected} ({meta['help']}).",
        ) from None
    minimum = meta["minimum"]
    if minimum is not None and value < minimum:
        raise UserError(
            f"Hyperparameter '{name}' is {raw}, below its minimum of {minimum:g}.",
            f"Set '{name}' to at least {minimum:g}.",
        )
    return value


def parse(raw: Mapping[str, str]) -> Hyperparameters:
    """Typed hyperparameters from decoded strings (reserved keys already dropped by the contract module)."""
    declared = {f.name: f for f in fields(Hyperparameters)}
    values: dict[str, Any] = {}
    for name, text in raw.items():
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UserError(
                f"Unknown hyperparameter '{name}'.{hint}",
                "Remove it or use one of the documented names (README, 'Hyperparameters').",
            )
        spec = declared[name]
        values[name] = _convert(name, text, str(spec.type), spec.metadata)
    if values.get("text_pair_column") and "long_text" not in values:
        values["long_text"] = "truncate"  # pairs are always cut to max_length; only an explicit choice is refused
    params = Hyperparameters(**values)
    if params.validation_split >= 1:
        raise UserError(
            f"Hyperparameter 'validation_split' is {params.validation_split:g}; it must be below 1.",
            "Set it to a share such as 0.1, or to 0 with a `validation` channel.",
        )
    if not 0 < params.multi_label_threshold < 1:
        raise UserError(
            f"Hyperparameter 'multi_label_threshold' is {params.multi_label_threshold:g}; it must lie between 0 and 1.",
            f"Set it to a probability such as {DEFAULT_THRESHOLD}.",
        )
    if params.long_text != "truncate" and params.text_pair_column:
        raise UserError(
            f"Hyperparameter 'long_text' is '{params.long_text}', which reads single texts; this job has text pairs "
            f"('text_pair_column' is '{params.text_pair_column}').",
            "Use long_text=truncate for sentence-pair tasks.",
        )
    return params


def describe() -> list[tuple[str, str, str]]:
    """(name, default, meaning) rows, for the README and `train --help`."""
    rows = []
    for spec in fields(Hyperparameters):
        choices = spec.metadata["choices"]
        meaning = spec.metadata["help"] + (f" ({' | '.join(choices)})" if choices else "")
        rows.append((spec.name, "unset" if spec.default is None else str(spec.default), meaning))
    return rows

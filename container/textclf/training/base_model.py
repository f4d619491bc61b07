"""Finding and loading the base model: the `model` channel, a local directory, or a hub id from the cache."""

from __future__ import annotations

import logging
import tarfile
import tempfile
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..artifact import find_model_dir
from ..contract import Channel
from ..errors import UserError
from ..modeling import is_left_to_right, prepare_model, prepare_tokenizer
from .data import LabelSet

log = logging.getLogger(__name__)

# Top-level modules of the sequence-classification heads (BERT family: classifier, GPT-2: score).
HEAD_MODULES = ("classifier", "score", "pre_classifier")

NO_NETWORK_REMEDY = (
    "This container has no access to the Hugging Face Hub (no network, or network isolation). Put the weights "
    "in the `model` channel: an S3 prefix holding config.json, model.safetensors and the tokenizer files."
)


def resolve_source(model_channel: Channel | None, model_name_or_path: str | None) -> str:
    """A local directory or a hub id; a `model` channel wins over the hyperparameter."""
    if model_channel is not None:
        return str(find_model_dir(_unpack_archives(model_channel.path)))
    if not model_name_or_path:
        raise UserError(
            "No base model: the hyperparameter model_name_or_path is unset and there is no `model` channel.",
            "Add a `model` channel with the base model's files, or set model_name_or_path.",
        )
    path = Path(model_name_or_path)
    if path.exists():
        return str(find_model_dir(path))
    if path.is_absolute() or model_name_or_path.startswith((".", "~")) or model_name_or_path.count("/") > 1:
        raise UserError(
            f"Model path {model_name_or_path} does not exist.",
            "Check model_name_or_path, or provide the model through the `model` channel.",
        )
    return model_name_or_path  # a hub id: only the local cache can serve it, see load_base


def _unpack_archives(directory: Path) -> Path:
    """A channel may hold a model.tar.gz (another job's output) instead of loose files: unpack it once."""
    archives = sorted(directory.glob("*.tar.gz"))
    if (directory / "config.json").exists() or not archives:
        return directory
    target = Path(tempfile.mkdtemp(prefix="base-model-"))
    with tarfile.open(archives[0]) as archive:
        archive.extractall(target, filter="data")
    log.info("Unpacked %s into %s", archives[0].name, target)
    return target


def load_base(source: str, labels: LabelSet) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(source))
        # transformers reports the new head as a colour-coded table of MISSING weights, which reads as an error
        # although it is what fine-tuning expects: that report is filtered out and said in one line below. (A
        # filter, not a level: raising that logger's level makes transformers log a tensor-parallel check.)
        report_logger = logging.getLogger("transformers.modeling_utils")
        report_logger.addFilter(_drop_load_report)
        try:
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=len(labels.names),
                id2label=labels.id2label,
                label2id=labels.label2id,
                problem_type="multi_label_classification" if labels.multi_label else "single_label_classification",
                ignore_mismatched_sizes=True,  # a checkpoint with another head (or none) gets a fresh one
                output_loading_info=True,
            )
        finally:
            report_logger.removeFilter(_drop_load_report)
    except OSError as exc:
        if Path(source).exists():
            raise UserError(
                f"Could not load the model in {source}: {exc}",
                "Provide a complete save_pretrained directory (config, weights, tokenizer).",
            ) from exc
        raise UserError(
            f"Model '{source}' is not a local directory and is not in the local cache.", NO_NETWORK_REMEDY
        ) from exc
    except ValueError as exc:  # e.g. an architecture without a sequence-classification head
        raise UserError(
            f"Model '{source}' cannot be loaded as a text classifier: {exc}", "Use a BERT-family or GPT-2 model."
        ) from exc
    log.info(_loading_summary(source, len(labels.names), loading))
    return prepare_model(model, tokenizer), tokenizer


def _drop_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in record.getMessage()


def _loading_summary(source: str, num_labels: int, loading: dict) -> str:
    """One line: the fresh head is expected; other weights initialised at random are worth a look."""
    fresh = set(loading.get("missing_keys") or ()) | {key[0] for key in loading.get("mismatched_keys") or ()}
    head = sorted(key for key in fresh if key.split(".")[0] in HEAD_MODULES)
    others = sorted(fresh - set(head))
    line = f"Loaded the base model from {source} with a new classification head for {num_labels} labels"
    line += f" ({', '.join(head)}: initialised at random, as fine-tuning expects)" if head else ""
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        line += f"; {len(others)} other weights were not in the checkpoint and start at random: {shown}"
    unused = loading.get("unexpected_keys") or ()
    if unused:
        line += f"; {len(unused)} checkpoint weights unused (e.g. a pre-training head)"
    return line + "."


def default_learning_rate(model: PreTrainedModel) -> float:
    """2e-5 suits BERT-family encoders; GPT-2 style decoders want a larger step."""
    return 5e-5 if is_left_to_right(model) else 2e-5

"""One training job from inputs to outputs: data, base model, the loop, then the model and reports it leaves."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import random
import shutil
import sys
import threading
import time
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import torch

from ..artifact import ModelMetadata, open_to_all_readers
from ..contract import Channel, MLPaths
from ..cpu_kernels import quantize_linear_layers
from ..modeling import pick_device
from . import faults
from .base_model import load_base, resolve_source
from .batching import EncodedSet, encode
from .checkpoints import CheckpointStore
from .data import ChannelData, Example, drop_unknown_labels, learn_labels, read_channel, split_validation
from .distributed import World, device_of
from .evaluation import Evaluation, EvaluationInterrupted
from .hyperparameters import Hyperparameters
from .loop import Trainer, TrainingResult, TrainingTask, metric_line
from .reports import write_reports

log = logging.getLogger(__name__)


class TrainingSession:
    def __init__(
        self,
        paths: MLPaths,
        params: Hyperparameters,
        channels: dict[str, Channel],
        stop: threading.Event,
        emit: Callable[[str], None],
        world: World | None = None,
    ) -> None:
        self.paths, self.params, self.stop, self.emit = paths, params, stop, emit
        self.world = world or World()  # every rank reads and encodes all the data; each trains on its share
        seed_everything(params.seed)
        self.device = device_of(self.world) if self.world.distributed else pick_device()
        train = self._read(channels["train"])
        self.labels = learn_labels(train.examples, params.multi_label)
        train_examples, validation = self._validation_set(train.examples, channels.get("validation"))
        test = channels.get("test")
        self.test_examples = drop_unknown_labels(self._read(test).examples, self.labels, "test") if test else []
        self.source = resolve_source(channels.get("model"), params.model_name_or_path)
        self.model, self.tokenizer = load_base(self.source, self.labels)
        self.eval_data = self._encode(validation) if validation else None
        task = TrainingTask(
            self.model,
            self._encode(train_examples),
            self.eval_data,
            self.tokenizer.pad_token_id,
            self.labels.multi_label,
            params.multi_label_threshold,
        )
        store = CheckpointStore(paths.checkpoints_dir)
        self.trainer = Trainer(task, params, self.device, store, stop, emit, self.world)
        if task.train_data.owners is not None:
            self.emit(
                f"Long texts read as {params.long_text}: {len(task.train_data)} training windows of "
                f"{len(train_examples)} texts"
                + (f", at most {params.max_chunks} per text." if params.long_text == "chunks" else ".")
            )
        self.emit(
            f"Data: {len(train_examples)} training and {len(validation)} validation texts, "
            f"{len(self.labels.names)} labels ({'multi-label' if self.labels.multi_label else 'single-label'}); "
            f"base model {self.source} ({self.model.config.model_type}) on {self.device}."
        )

    def _read(self, channel: Channel) -> ChannelData:
        p = self.params
        columns = (p.text_column, p.label_column, p.text_pair_column)
        return read_channel(channel.path, *columns, p.max_length, p.long_text_policy)

    def _validation_set(self, examples: list[Example], channel: Channel | None) -> tuple[list[Example], list[Example]]:
        if channel is not None:
            validation = drop_unknown_labels(self._read(channel).examples, self.labels, "validation")
            if validation:
                return examples, validation
            log.warning("The validation channel has no usable rows; holding out part of `train` instead.")
        return split_validation(examples, self.params.validation_split, self.params.seed)

    def _encode(self, examples: list[Example]) -> EncodedSet:
        return encode(self.tokenizer, examples, self.labels, self.params.max_length, self.params.long_text_policy)

    # -- the loop ------------------------------------------------------------------------------------------------

    def train(self) -> TrainingResult:
        self.trainer.resume()
        self.emit(
            f"Training for {self.trainer.total_steps} steps ({self.trainer.steps_per_epoch} per epoch), "
            f"learning rate {self.trainer.learning_rate:g}, precision {self.trainer.dtype or 'fp32'}."
        )
        result = self.trainer.fit()
        if result.best_weights is not None:  # only rank 0 has the best weights, in its checkpoints directory
            CheckpointStore.load_weights(result.best_weights, self.model)
        self.world.broadcast_parameters(self.model)
        return result

    def _evaluate(self, data: EncodedSet):
        # SIGTERM skips what is left: the model matters more than its final scores.
        return self.trainer.evaluator.evaluate(data, self.stop.is_set)

    # -- outputs -------------------------------------------------------------------------------------------------

    def write_model(self, result: TrainingResult, summary: dict) -> None:
        """The deployable model: weights (safetensors), tokenizer, id2label, and textclf.json. No checkpoints.
        Global rank 0 only: every other host leaves its /opt/ml/model empty."""
        if not self.world.is_main:
            return
        model_dir = self.paths.model_dir
        with faults.writing("the model", model_dir):
            self._save(model_dir, summary)

    def _save(self, model_dir: Path, summary: dict) -> None:
        clear_directory(model_dir)
        self.model.to(torch.float32).save_pretrained(model_dir)
        self.tokenizer.save_pretrained(model_dir)
        ModelMetadata(
            labels=self.labels.names,
            max_length=self.params.max_length,
            multi_label=self.labels.multi_label,
            threshold=self.params.multi_label_threshold,
            text_pair=self.params.text_pair_column is not None,
            long_text=self.params.long_text,
            chunk_stride=self.params.chunk_stride,
            max_chunks=self.params.max_chunks,
            model_type=self.model.config.model_type,
            base_model=self.source,
            libraries=library_versions(),
            hyperparameters=self.params.as_dict(),
            metrics={key: summary.get(key) for key in ("best", "validation", "test", "steps", "stopped")}
            | {key: summary[key] for key in ("validation_int8", "validation_int8_error") if key in summary},
        ).write(model_dir)
        open_to_all_readers(model_dir)

    def summarise(self, result: TrainingResult, seconds: float) -> dict:
        """Final scores of the kept model, metrics.json and the plots. Skipped work when stopping: time is short."""
        summary = {
            "steps": result.step,
            "total_steps": result.total_steps,
            "stopped": result.stopped,
            "early_stopped": result.early_stopped,
            "best": result.best,
            "train_seconds": seconds,
        }
        confusion = None if result.stopped else self._final_evaluation(summary)
        if self.world.is_main:
            write_reports(self.paths.output_data_dir, summary, result.history, self.labels.names, confusion)
        return summary

    def _final_evaluation(self, summary: dict) -> np.ndarray | None:
        """Score the kept model on validation and test into `summary`; the validation confusion matrix, if any."""
        test_data = self._encode(self.test_examples) if self.test_examples else None
        self.emit(
            f"Final evaluation of the kept model on {self.eval_data.text_count if self.eval_data else 0} "
            f"validation and {test_data.text_count if test_data else 0} test texts."
        )
        confusion = final = None
        try:
            if self.eval_data is not None:
                final = self._evaluate(self.eval_data)
                summary["validation"], confusion = final.metrics, final.confusion
            if test_data is not None:
                test = self._evaluate(test_data)
                summary["test"] = test.metrics
                self.emit(metric_line({f"test_{k}": v for k, v in test.metrics.items()}))
            # Last, on the main process alone: the other ranks' collectives are done by now.
            if self.params.evaluate_int8 and self.world.is_main:
                if final is not None:
                    self._score_int8(final, summary)
                else:
                    log.warning(
                        "evaluate_int8 is set, but this job has no validation texts, so nothing was scored in int8. "
                        "Give it a `validation` channel, or a validation_split above 0."
                    )
        except EvaluationInterrupted:
            log.warning("Final evaluation interrupted by a stop request; writing the model without its scores.")
            summary["final_evaluation_interrupted"] = True
        return confusion

    def _score_int8(self, as_trained: Evaluation, summary: dict) -> None:
        """int8 scores into `summary`. A check the team asked for, not the job: where int8 cannot run (its kernels,
        the memory for a copy), the job says why and still writes its model."""
        try:
            summary["validation_int8"] = self._int8_scores(as_trained)
        except EvaluationInterrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the optional int8 check
            log.exception("evaluate_int8: scoring in int8 failed; the model is written without int8 scores")
            summary["validation_int8_error"] = f"{type(exc).__name__}: {exc}"

    def _int8_scores(self, as_trained: Evaluation) -> dict[str, float]:
        """The kept model scored on validation as `serve` answers with TEXTCLF_DTYPE=int8 (a CPU copy: the model
        written stays float32), and the share of texts whose predicted labels int8 leaves as they were."""
        started = time.monotonic()
        # Copied on the CPU: a second copy on a GPU could run out of memory and cost the job its model. Only
        # writing the model is left to do, and that needs no GPU, so the trained model moves there for good.
        model = copy.deepcopy(self.model.to(device="cpu")).to(dtype=torch.float32)
        evaluator = dataclasses.replace(
            self.trainer.evaluator,
            model=quantize_linear_layers(model.eval()),
            device=torch.device("cpu"),
            autocast=contextlib.nullcontext,
            world=World(),
        )
        int8 = evaluator.evaluate(self.eval_data, self.stop.is_set)
        same = (int8.predicted == as_trained.predicted).reshape(len(int8.predicted), -1).all(axis=1)
        scores = {**int8.metrics, "labels_kept": float(same.mean())}
        self.emit(metric_line({f"validation_int8_{k}": v for k, v in scores.items()}))
        self.emit(f"int8 on CPU kept {same.mean():.1%} of the validation labels ({time.monotonic() - started:.1f} s).")
        return scores


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "tokenizers", "safetensors"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return versions


def clear_directory(directory: Path) -> None:
    """Empty a directory without removing it: /opt/ml/model may be a mount point."""
    directory.mkdir(parents=True, exist_ok=True)
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)

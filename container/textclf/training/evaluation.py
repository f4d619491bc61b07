"""Scoring a model on a labelled set: loss, accuracy and F1 scores, and the confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling import forward_logits
from ..windows import aggregate
from .batching import EncodedSet, collate, evaluation_batches
from .distributed import World


class EvaluationInterrupted(Exception):
    """Raised when a stop was requested mid-evaluation: the result would be partial, so there is none."""


@dataclass
class Evaluation:
    metrics: dict[str, float]
    confusion: np.ndarray | None = field(default=None, repr=False)  # rows: true label, columns: predicted
    predicted: np.ndarray | None = field(default=None, repr=False)  # per text: a label index, or 0/1 per label


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy, or for multi-label the mean binary cross-entropy over labels; one value per text."""
    logits = logits.float()
    if multi_label:
        per_text = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(-1)
    else:
        per_text = F.cross_entropy(logits, labels, reduction="none")
    if reduction == "none":
        return per_text
    return per_text.sum() if reduction == "sum" else per_text.mean()


@dataclass
class Evaluator:
    """Scores its model on a labelled set: loss, accuracy, F1 scores, and for single-label tasks the confusion
    matrix. Multi-label predictions are sigmoid(logit) >= threshold, the rule `serve` applies. With several
    workers each scores its shard and the outputs are gathered in example order, so the scores are those of one."""

    model: torch.nn.Module
    pad_token_id: int
    multi_label: bool
    threshold: float
    device: torch.device
    autocast: Callable[[], AbstractContextManager]
    batch_size: int
    world: World = field(default_factory=World)

    @torch.no_grad()
    def evaluate(self, data: EncodedSet, should_stop: Callable[[], bool] = lambda: False) -> Evaluation:
        """Raises EvaluationInterrupted as soon as `should_stop()` says so (on any rank)."""
        model = self.model
        was_training = model.training
        model.eval()
        all_logits, order = [], []
        mine = self.world.shard(len(data))
        lengths = data.lengths
        batches = [[mine[j] for j in b] for b in evaluation_batches([lengths[i] for i in mine], self.batch_size)]
        rounds = math.ceil(math.ceil(len(data) / self.world.size) / self.batch_size)  # the largest shard's batches
        try:
            for round_ in range(rounds):
                if self.world.any(should_stop()):
                    raise EvaluationInterrupted
                if round_ >= len(batches):
                    continue
                indices = batches[round_]
                batch = collate(data, indices, self.pad_token_id, self.multi_label)
                batch = {k: v.to(self.device) for k, v in batch.items()}
                batch.pop("labels")
                with self.autocast():
                    logits = forward_logits(model, batch)
                all_logits.append(logits.float().cpu())
                order.extend(indices)
        finally:
            model.train(was_training)
        empty = torch.zeros((0, model.config.num_labels))
        _, rows = self.world.gather_outputs(order, torch.cat(all_logits or [empty]).numpy())  # in row order
        if data.owners is not None:  # one answer per text, as `serve` gives it
            rows = np.asarray(aggregate(rows.tolist(), data.owners, self.multi_label), dtype=np.float32)
        targets_list = data.text_targets
        labels = torch.tensor(targets_list, dtype=torch.float if self.multi_label else torch.long)
        metrics = {"loss": float(loss_fn(torch.from_numpy(rows), labels, self.multi_label))}
        logits, targets = rows, np.asarray(targets_list)
        if self.multi_label:
            predicted = (1 / (1 + np.exp(-logits)) >= self.threshold).astype(int)
            metrics.update(_multi_label_scores(predicted, targets.astype(int)))
            return Evaluation(metrics, predicted=predicted)
        predicted = logits.argmax(-1)
        confusion = confusion_matrix(targets, predicted, logits.shape[-1])
        metrics.update(_single_label_scores(confusion))
        return Evaluation(metrics, confusion, predicted)


def confusion_matrix(targets: np.ndarray, predicted: np.ndarray, num_labels: int) -> np.ndarray:
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (targets, predicted), 1)
    return matrix


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=float), where=denominator > 0)


def _averages(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, support: np.ndarray) -> dict[str, float]:
    per_label = _f1(tp, fp, fn)
    present = support > 0
    return {
        "macro_f1": float(per_label[present].mean()) if present.any() else 0.0,
        "micro_f1": float(_f1(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))[0]),
        "weighted_f1": float((per_label * support).sum() / support.sum()) if support.sum() else 0.0,
    }


def _single_label_scores(confusion: np.ndarray) -> dict[str, float]:
    tp = np.diag(confusion).astype(float)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    scores = {"accuracy": float(tp.sum() / confusion.sum())}
    scores.update(_averages(tp, fp, fn, confusion.sum(axis=1)))
    return scores


def _multi_label_scores(predicted: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    tp = (predicted & targets).sum(axis=0).astype(float)
    fp = (predicted & (1 - targets)).sum(axis=0).astype(float)
    fn = ((1 - predicted) & targets).sum(axis=0).astype(float)
    scores = {"accuracy": float((predicted == targets).all(axis=1).mean())}  # exact match of the whole label set
    scores.update(_averages(tp, fp, fn, targets.sum(axis=0)))
    return scores

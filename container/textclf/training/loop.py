"""The training loop: plain PyTorch, one device per process, checkpointed at step boundaries and stoppable by SIGTERM.

The job's position is a single number, the optimiser step: epoch and batch follow from it, and the batch order of
an epoch is a pure function of the seed. A checkpoint taken after step N plus that rule is all a resumed job needs.
The trainer owns its evaluator: the evaluations during training and the final scores use the same one.

Data-parallel (several workers, see distributed.py): an optimiser step takes gradient_accumulation_steps x world
size batches of that order, and each rank takes every size-th of them, so the global batch grows with the world
and the step's texts are the ones a single process accumulating as many batches would see, in the same order.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import get_scheduler

from ..errors import UserError
from ..modeling import auto_bf16, forward_logits
from .base_model import default_learning_rate
from .batching import EncodedSet, collate, training_batches
from .checkpoints import CheckpointStore
from .distributed import World, remove_copy
from .evaluation import EvaluationInterrupted, Evaluator, loss_fn
from .hyperparameters import Hyperparameters

log = logging.getLogger(__name__)


@dataclass
class TrainingTask:
    """What is trained: the model, its encoded data, and how its labels are read."""

    model: torch.nn.Module
    train_data: EncodedSet
    eval_data: EncodedSet | None
    pad_token_id: int
    multi_label: bool
    threshold: float  # multi-label: a label is predicted when its sigmoid score reaches this


@dataclass
class TrainingResult:
    step: int
    total_steps: int
    history: list[dict] = field(default_factory=list)
    best: dict | None = None  # {"step", "metric", "value", "metrics"} of the best evaluation
    best_weights: object = None  # path of the best-N checkpoint, or None: use the current weights
    stopped: bool = False  # by SIGTERM, before the planned end
    early_stopped: bool = False


def resolve_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32."""
    if requested == "auto":
        return torch.bfloat16 if auto_bf16(device) else None
    if requested == "fp16" and device.type != "cuda":
        raise UserError("precision=fp16 needs a GPU, and this job runs on CPU.", "Use precision=auto, bf16 or fp32.")
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("precision=bf16 is not supported by this GPU.", "Use precision=auto or fp16.")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(requested)


def make_optimizer(model: torch.nn.Module, params: Hyperparameters, lr: float) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and norm weights, fused kernels where the device has them."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or "norm" in name.lower() else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": params.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError) as exc:
        log.info("Fused AdamW unavailable here (%s); using the foreach implementation.", exc)
        return torch.optim.AdamW(groups, lr=lr, foreach=True)


def _capture_rng() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def metric_line(values: dict[str, float]) -> str:
    """`name=value; ...` in plain decimals, the form the README's MetricDefinitions regexes read."""
    return " ".join(
        f"{name}={value:.8f};" if abs(value) < 1e-3 and value else f"{name}={value:.4f};"
        for name, value in values.items()
    )


class Trainer:
    def __init__(
        self,
        task: TrainingTask,
        params: Hyperparameters,
        device: torch.device,
        store: CheckpointStore,
        stop_requested: threading.Event,
        emit: Callable[[str], None] = print,
        world: World | None = None,
    ) -> None:
        self.task, self.model, self.params, self.device = task, task.model, params, device
        self.store, self.stop_requested, self.emit = store, stop_requested, emit
        self.world = world or World()
        self.batches_per_epoch = math.ceil(len(task.train_data) / params.per_device_batch_size)
        self.batches_per_step = params.gradient_accumulation_steps * self.world.size
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / self.batches_per_step)
        self.total_steps = params.max_steps or max(1, math.ceil(params.epochs * self.steps_per_epoch))
        self.learning_rate = params.learning_rate or default_learning_rate(task.model)
        self.dtype = resolve_precision(params.precision, device)
        self.model.to(device)  # before the optimiser exists, so its state lives on the same device as the weights
        self.ddp = self.model  # what the training steps call: the model, or its DistributedDataParallel wrapper
        if self.world.distributed:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                process_group=self.world.gradients_group,
            )
        self.optimizer = make_optimizer(self.model, params, self.learning_rate)
        self.scheduler = get_scheduler(
            params.lr_scheduler,
            self.optimizer,
            num_warmup_steps=round(params.warmup_ratio * self.total_steps),
            num_training_steps=self.total_steps,
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.evaluator = Evaluator(
            self.model,
            task.pad_token_id,
            task.multi_label,
            task.threshold,
            device,
            self.autocast,
            batch_size=params.per_device_batch_size * 2,  # no gradients: twice the texts fit
            world=self.world,
        )
        self.result = TrainingResult(step=0, total_steps=self.total_steps)
        self.evals_without_improvement = 0
        self.last_eval_step = 0

    # -- schedule ----------------------------------------------------------------------------------------------------

    def _epoch_end(self, step: int) -> bool:
        return step % self.steps_per_epoch == 0

    def _eval_due(self, step: int) -> bool:
        if self.task.eval_data is None:
            return False
        every = self.params.eval_steps
        return step == self.total_steps or (step % every == 0 if every else self._epoch_end(step))

    def _checkpoint_due(self, step: int) -> bool:
        return step % self.params.checkpoint_steps == 0 or self._epoch_end(step)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # -- state -------------------------------------------------------------------------------------------------------

    def state_dict(self, rng_of_ranks: list[dict]) -> dict:
        return {
            "step": self.result.step,
            "world_size": self.world.size,
            "rng_of_ranks": rng_of_ranks,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_of_ranks[0],
            "history": self.result.history,
            "best": self.result.best,
            "evals_without_improvement": self.evals_without_improvement,
            "last_eval_step": self.last_eval_step,
            "total_steps": self.total_steps,
        }

    def resume(self) -> bool:
        """Continue from the newest complete checkpoint, if there is one (rank 0's, shared with the others)."""
        found = self.store.latest() if self.world.is_main else None
        path = self.world.share_checkpoint(found)
        if path is None:
            return False
        try:
            self._load(path)
        finally:
            remove_copy(path, found)
        if self.result.best is not None and self.world.is_main:
            self.result.best_weights = self.store.best()
        self.emit(f"Resuming from checkpoint {found} at step {self.result.step}/{self.total_steps}.")
        return True

    def _load(self, path) -> None:
        state = self.store.load_state(path)
        if state.get("world_size", 1) != self.world.size:
            log.warning(
                "Checkpoint %s was written by %d workers, this job has %d: the batches of a step change from here.",
                path,
                state.get("world_size", 1),
                self.world.size,
            )
        if state["total_steps"] != self.total_steps:
            log.warning(
                "Checkpoint %s planned %d steps, this job plans %d; resuming with the new plan.",
                path,
                state["total_steps"],
                self.total_steps,
            )
        self.store.load_weights(path, self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        rng_of_ranks = state.get("rng_of_ranks") or [state["rng"]]
        _restore_rng(rng_of_ranks[self.world.rank] if len(rng_of_ranks) == self.world.size else state["rng"])
        self.result.step, self.result.history, self.result.best = state["step"], state["history"], state["best"]
        self.evals_without_improvement = state["evals_without_improvement"]
        self.last_eval_step = state["last_eval_step"]

    def _save_checkpoint(self) -> None:
        rng_of_ranks = self.world.gather_objects(_capture_rng())  # every rank's dropout stream, for exact resume
        if self.world.is_main:
            self.store.save(self.result.step, self.model, self.state_dict(rng_of_ranks))
        self.world.wait_for_main()

    # -- loop --------------------------------------------------------------------------------------------------------

    def fit(self) -> TrainingResult:
        self.model.train()
        result = self.result
        if result.step and self._eval_due(result.step) and self.last_eval_step < result.step:
            self._evaluate()  # the job was stopped during this evaluation last time
        started, samples_since_log, loss_since_log, steps_since_log = time.monotonic(), 0, 0.0, 0
        log_clock, first_step = started, result.step
        batches: list[list[int]] = []
        while result.step < self.total_steps and not self._should_stop():
            epoch, step_in_epoch = divmod(result.step, self.steps_per_epoch)
            if step_in_epoch == 0 or not batches:
                batches = training_batches(
                    self.task.train_data.lengths, self.params.per_device_batch_size, self.params.seed, epoch
                )
            per_step = self.batches_per_step
            group = batches[step_in_epoch * per_step : (step_in_epoch + 1) * per_step]
            loss = self._optimizer_step(group)
            result.step += 1
            samples_since_log += sum(len(b) for b in group)
            loss_since_log += loss
            steps_since_log += 1
            if result.step % self.params.logging_steps == 0 or result.step == self.total_steps:
                now = time.monotonic()
                loss_since_log = self.world.sum(loss_since_log)[0]  # each rank's share of the steps' mean loss
                self._log_progress(
                    loss_since_log / steps_since_log,
                    samples_since_log / max(now - log_clock, 1e-9),
                    (now - started) / (result.step - first_step),
                )
                log_clock, samples_since_log, loss_since_log, steps_since_log = now, 0, 0.0, 0
            if self._eval_due(result.step):
                self._evaluate()
            stop_early = self._patience_exhausted()
            stopping = self._should_stop()  # asked on every rank every step: all ranks stop at the same step
            if self._checkpoint_due(result.step) or stopping or stop_early:
                self._save_checkpoint()
            if stop_early:
                result.early_stopped = True
                self.emit(
                    f"Early stopping at step {result.step}: no improvement in "
                    f"{self.evals_without_improvement} evaluations."
                )
                break
        result.stopped = result.step < self.total_steps and not result.early_stopped
        if result.stopped and result.step > 0:
            self._save_checkpoint()
        return result

    def _should_stop(self) -> bool:
        """A SIGTERM on any rank, agreed by all (a collective: every rank calls this at the same points)."""
        return self.world.any(self.stop_requested.is_set())

    def _optimizer_step(self, group: list[list[int]]) -> float:
        """One step over the step's batches (all ranks'); returns this rank's share of the step's mean loss."""
        samples = sum(len(indices) for indices in group)
        world = self.world
        share, weight = group[world.rank :: world.size], 1.0
        if not share:  # the epoch's last step has fewer batches than ranks: join the gradient exchange with nothing
            share, weight = group[:1], 0.0
        total = torch.zeros((), device=self.device)
        task = self.task
        for position, indices in enumerate(share):
            batch = collate(task.train_data, indices, task.pad_token_id, task.multi_label)
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            labels = batch.pop("labels")
            last = position == len(share) - 1
            # Gradients are exchanged once per step, after the last batch; the ones before only accumulate.
            with contextlib.nullcontext() if last or not world.distributed else self.ddp.no_sync():
                with self.autocast():
                    logits = forward_logits(self.ddp, batch)
                # Sum over texts, divided by the texts of the whole step (all ranks'): every text weighs the same
                # whatever the split. DistributedDataParallel averages over ranks: the world size undoes that.
                loss = loss_fn(logits, labels, task.multi_label, reduction="sum") / samples * weight
                self.scaler.scale(loss * world.size).backward()
            total += loss.detach()
        if self.params.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.params.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(total)

    def _log_progress(self, train_loss: float, samples_per_second: float, seconds_per_step: float) -> None:
        step = self.result.step
        values = {
            "train_loss": train_loss,
            "learning_rate": self.scheduler.get_last_lr()[0],
            "samples_per_second": samples_per_second,
            "epoch": step / self.steps_per_epoch,
        }
        self.result.history.append({"step": step, **values})
        if not self.world.is_main:  # a line in each host's log that it took part, never a metric line
            log.info("Worker %s finished step %d/%d.", self.world, step, self.total_steps)
            return
        eta = _format_duration(seconds_per_step * (self.total_steps - step))
        self.emit(f"step={step}/{self.total_steps}; {metric_line(values)} eta={eta};")

    def _evaluate(self) -> None:
        try:
            evaluation = self.evaluator.evaluate(self.task.eval_data, self.stop_requested.is_set)
        except EvaluationInterrupted:
            log.info("Evaluation at step %d interrupted by a stop request; it runs again on resume.", self.result.step)
            return
        step = self.result.step
        self.last_eval_step = step
        ordered = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "loss")
        values = {f"eval_{name}": evaluation.metrics[name] for name in ordered}
        self.emit(f"{metric_line(values)} epoch={step / self.steps_per_epoch:.4f}; step={step};")
        self.result.history.append({"step": step, "epoch": step / self.steps_per_epoch, **values})
        self._track_best(step, evaluation.metrics)

    def _track_best(self, step: int, metrics: dict[str, float]) -> None:
        name = self.params.metric_for_best_model
        value = metrics[name]
        best = self.result.best
        improved = best is None or (value < best["value"] if name == "loss" else value > best["value"])
        if not improved:
            self.evals_without_improvement += 1
            return
        self.evals_without_improvement = 0
        self.result.best = {"step": step, "metric": name, "value": value, "metrics": metrics}
        if self.world.is_main:
            self.result.best_weights = self.store.save_best(step, self.model, name, value)
        self.world.wait_for_main()

    def _patience_exhausted(self) -> bool:
        patience = self.params.early_stopping_patience
        return bool(patience) and self.evals_without_improvement >= patience

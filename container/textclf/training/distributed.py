"""Data-parallel workers: where this process stands in the job, and the few collectives the trainer needs.

`train` on each host is the launcher (training/launcher.py); it starts one worker per GPU (one on CPU) with
torchrun, which sets RANK, WORLD_SIZE and LOCAL_RANK, and sets LAUNCH_DIR_ENV so that `train` knows it is a
worker. A one-process job gets `World()`, whose collectives do nothing, so the trainer has one code path.

Two process groups: the default one is gloo on the CPU with a long timeout, for the step-boundary agreement (stop
flag, logged loss), gathering evaluation outputs and waiting while global rank 0 writes a file; the data-parallel
one (NCCL on GPUs, gloo on CPU) carries gradients with a short timeout, so a rank that hangs fails the job
quickly. Rank 0's file writes are always followed by `wait_for_main`, so a slow disk never trips that timeout.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .launcher import DistributedSettings

log = logging.getLogger(__name__)

# Rank 0 may write a checkpoint or the model while the others wait: as long as SageMaker's stop grace, and more.
WAIT_TIMEOUT = datetime.timedelta(minutes=30)


class World:
    """This process's place among the job's workers, and the collectives the trainer uses. `World()` is a job of
    one process: every collective returns its input."""

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0, host: str = "algo-1") -> None:
        self.rank, self.size, self.local_rank, self.host = rank, size, local_rank, host
        self.gradients_group = None  # the data-parallel group (NCCL or gloo)

    @property
    def is_main(self) -> bool:
        """Global rank 0: the only process that writes checkpoints, the model, reports and metric lines."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def __repr__(self) -> str:
        return f"rank {self.rank} of {self.size} (local rank {self.local_rank} on {self.host})"

    # -- agreement at step boundaries ----------------------------------------------------------------------------

    def sum(self, *values: float) -> list[float]:
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one: a SIGTERM on any host stops all ranks at the same step."""
        return self.sum(float(flag))[0] > 0

    def wait_for_main(self) -> None:
        """Every rank waits here while rank 0 writes a file (a checkpoint, the best weights)."""
        if self.distributed:
            torch.distributed.barrier()

    # -- evaluation ------------------------------------------------------------------------------------------------

    def shard(self, count: int) -> list[int]:
        """The examples this rank scores: every size-th one, so the shards differ in length by one at most."""
        return list(range(self.rank, count, self.size))

    def gather_outputs(self, order: list[int], *arrays: np.ndarray) -> tuple[list[int], ...]:
        """Every rank's (example indices, per-example outputs), concatenated and put back in example order."""
        if self.distributed:
            parts: list = [None] * self.size
            torch.distributed.all_gather_object(parts, (order, *arrays))
            order = [i for part in parts for i in part[0]]
            arrays = tuple(np.concatenate([part[k + 1] for part in parts]) for k in range(len(arrays)))
        by_index = np.argsort(np.asarray(order, dtype=np.int64), kind="stable")
        return (sorted(order), *(array[by_index] for array in arrays))

    # -- state that only rank 0 has -------------------------------------------------------------------------------

    def broadcast_object(self, value):
        if not self.distributed:
            return value
        holder = [value]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather_objects(self, value) -> list:
        if not self.distributed:
            return [value]
        parts: list = [None] * self.size
        torch.distributed.all_gather_object(parts, value)
        return parts

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Rank 0's weights to every rank (after it loaded the best checkpoint, which only its host has)."""
        if not self.distributed:
            return
        for tensor in [*model.parameters(), *model.buffers()]:
            torch.distributed.broadcast(tensor.data, src=0, group=self.gradients_group)

    def share_checkpoint(self, path: Path | None) -> Path | None:
        """Rank 0's checkpoint directory, copied to every other rank's /tmp: other hosts have none of their own
        (each host's /opt/ml/checkpoints is its own, and only rank 0 writes)."""
        if not self.distributed:
            return path
        files = None
        if self.is_main and path is not None:
            files = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
        files = self.broadcast_object((path.name, files) if files is not None else None)
        if files is None or self.is_main:
            return path if files is not None else None
        name, contents = files
        copy = Path(tempfile.mkdtemp(prefix=f"textclf-rank{self.rank}-")) / name
        copy.mkdir()
        for file_name, data in contents.items():
            (copy / file_name).write_bytes(data)
        return copy


def start_world(settings: DistributedSettings, host: str) -> World:
    """Join the job's process groups (a worker started by the launcher). Sets the CUDA device of this rank."""
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world = World(rank, size, local_rank, host)
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group("gloo", timeout=WAIT_TIMEOUT)
    world.gradients_group = torch.distributed.new_group(
        backend="nccl" if gpu else "gloo", timeout=datetime.timedelta(seconds=settings.collective_timeout_s)
    )
    log.info("Worker %s joined (%s).", world, "NCCL" if gpu else "gloo")
    return world


def device_of(world: World) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", world.local_rank)
    return torch.device("cpu")


def stop_world() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# What gloo and NCCL say when another worker went away or hung; such a failure is a consequence, not the cause.
PEER_LOST_WORDS = (
    "Connection closed by peer",
    "Connection reset by peer",
    "Broken pipe",
    "Timed out",
    "timed out",
    "Watchdog caught collective operation timeout",
    "NCCL communicator was aborted",
    "ncclRemoteError",
)


def is_lost_peer(exc: BaseException) -> bool:
    if isinstance(exc, (torch.distributed.DistNetworkError, ConnectionError)):
        return True
    return isinstance(exc, (torch.distributed.DistError, RuntimeError)) and any(
        word in str(exc) for word in PEER_LOST_WORDS
    )


def remove_copy(path: Path | None, original: Path | None) -> None:
    if path is not None and path != original:
        shutil.rmtree(path.parent, ignore_errors=True)

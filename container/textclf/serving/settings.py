"""The server's own knobs (TEXTCLF_*), each declared once with its default and meaning, and the process plan.

SageMaker's variables (SAGEMAKER_*) are declared in textclf.contract; this module adds the project's knobs and
decides, from both and from the hardware, how many gunicorn workers and torch threads to run. Standard library
only, no side effects at import: gunicorn's master reads it without ever importing torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from ..contract import ServingEnvironment
from ..environment import choice, decimal, switch, variable, whole_number
from ..environment import read as read_environment
from ..errors import UserError

# SIGKILL follows SIGTERM after 30 s on SageMaker: in-flight requests get 20 s, gunicorn's exit the rest.
GRACEFUL_TIMEOUT_S = 20
# Idle keep-alive connections stay open longer than a front-end proxy's usual 60 s idle timeout, so the server is
# never the side that closes a connection the proxy is about to reuse (a reset POST is not retried).
KEEPALIVE_S = 75


@dataclass(frozen=True)
class ServingSettings:
    """The server's own knobs, all TEXTCLF_*: `serve --help` and the README list them from here."""

    batching: bool = variable(
        "TEXTCLF_BATCHING", True, "on: texts of concurrent requests share forward passes; off: each request alone",
        switch, "on",
    )  # fmt: skip
    max_batch_size: int = variable("TEXTCLF_MAX_BATCH_SIZE", 32, "most texts in one forward pass", whole_number())
    max_batch_tokens: int = variable(
        "TEXTCLF_MAX_BATCH_TOKENS", 8192, "most padded tokens (texts x longest text) in one forward pass",
        whole_number(),
    )  # fmt: skip
    # 0: an idle model starts at once, and texts arriving while it runs form the next batch, so batching costs
    # nothing at low load; a few ms more trades latency for larger batches when requests arrive in bursts.
    max_batch_delay_ms: float = variable(
        "TEXTCLF_MAX_BATCH_DELAY_MS", 0.0, "longest a text waits for others to join its batch when the model is idle",
        decimal(0, 10_000), "0",
    )  # fmt: skip
    max_request_tokens: int | None = variable(
        "TEXTCLF_MAX_REQUEST_TOKENS", None, "most tokens of all texts of one request (413 above it)",
        whole_number(auto="auto"), "auto: what the worker scores in half the time limit, measured at warm-up",
    )  # fmt: skip
    torch_threads: int | None = variable(
        "TEXTCLF_TORCH_THREADS", None, "torch threads per worker", whole_number(auto="auto"),
        "auto: (CPU cores - 1) / workers, at least 1; on GPU cores / workers",
    )  # fmt: skip
    http_threads: int = variable(
        "TEXTCLF_HTTP_THREADS", 64, "request threads per worker (gunicorn gthread)", whole_number(minimum=2)
    )
    device: str = variable(
        "TEXTCLF_DEVICE", "auto", "auto (a GPU when there is one), cpu, cuda", choice("auto", "cpu", "cuda")
    )
    dtype: str = variable(
        "TEXTCLF_DTYPE", "auto", "auto (bfloat16 on GPUs that support it, else float32), float32, bfloat16, float16",
        choice("auto", "float32", "bfloat16", "float16"),
    )  # fmt: skip

    def describe(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_settings(environ: Mapping[str, str] | None = None) -> ServingSettings:
    return read_environment(ServingSettings, environ)


# --- hardware and the process plan -----------------------------------------------------------------------------


def cpu_count() -> int:
    """Cores this process may use: the affinity mask, capped by a cgroup v2 CPU quota (docker --cpus)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def gpu_count(environ: Mapping[str, str] | None = None) -> int:
    """GPUs visible to this process, found without importing torch (CUDA must not start in gunicorn's master)."""
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return len(list(proc.iterdir()))
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
            return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            return 0
    return 0


def visible_gpu_ids(environ: Mapping[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(gpu_count(environ))]


@dataclass(frozen=True)
class ProcessPlan:
    workers: int
    torch_threads: int
    devices: tuple[str, ...]  # one CUDA device id per worker slot; empty on CPU
    cores: int

    @property
    def on_gpu(self) -> bool:
        return bool(self.devices)


def plan_processes(env: ServingEnvironment, settings: ServingSettings, cores: int, gpus: list[str]) -> ProcessPlan:
    """Workers and threads: on GPU one worker per device, each bound to its own; on CPU workers x threads <= cores.

    On CPU one worker is the default: one copy of the model in memory, and its micro-batcher keeps the cores
    busy with batched matrix products (serverless endpoints also recommend one worker); torch gets every core but
    one, which the HTTP threads keep.
    SAGEMAKER_MODEL_SERVER_WORKERS overrides either choice; TEXTCLF_TORCH_THREADS overrides the thread count.
    """
    use_gpu = settings.device != "cpu" and bool(gpus)
    if settings.device == "cuda" and not gpus:
        raise UserError(
            "TEXTCLF_DEVICE=cuda but no GPU is visible.", "Run on a GPU instance or set TEXTCLF_DEVICE=auto."
        )
    if use_gpu:
        workers = env.workers or len(gpus)
        devices = tuple(gpus[i % len(gpus)] for i in range(workers))
        threads = settings.torch_threads or max(1, cores // workers)
        return ProcessPlan(workers, threads, devices, cores)
    workers = env.workers or 1
    # One core stays with the HTTP side (request threads parsing, tokenising, writing JSON; the hand-offs to the
    # batcher): measured on 2 cores, a second torch thread spinning at OpenMP barriers starved them, and MiniLM
    # fell from 86 to a few requests/s at concurrency 1.
    threads = settings.torch_threads or max(1, (cores - 1) // workers)
    return ProcessPlan(workers, threads, (), cores)

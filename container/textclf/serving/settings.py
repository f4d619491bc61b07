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
        "TEXTCLF_TORCH_THREADS", None, "torch threads per forward pass", whole_number(auto="auto"),
        "auto: 1 on CPU (the cores go to runner threads instead); on a GPU, cores / workers",
    )  # fmt: skip
    http_threads: int = variable(
        "TEXTCLF_HTTP_THREADS", 64, "request threads per worker (gunicorn gthread)", whole_number(minimum=2)
    )
    device: str = variable(
        "TEXTCLF_DEVICE", "auto", "auto (a GPU when there is one), cpu, cuda", choice("auto", "cpu", "cuda")
    )
    dtype: str = variable(
        "TEXTCLF_DTYPE", "auto",
        "auto (bfloat16 on GPUs that support it and on CPUs with bf16 instructions, else float32), float32, "
        "bfloat16, float16, int8 (CPU only: linear layers in 8 bits, opt-in, labels may change)",
        choice("auto", "float32", "bfloat16", "float16", "int8"),
    )  # fmt: skip
    prepack: bool = variable(
        "TEXTCLF_PREPACK", True,
        "on: a bfloat16 model on CPU has its linear layers' weights reordered once, at load, for oneDNN (the same "
        "answers, faster small batches); off: as loaded",
        switch, "on",
    )  # fmt: skip
    trace: bool = variable(
        "TEXTCLF_TRACE", True,
        "on: on CPU the forward pass is recorded once, at load, as a TorchScript graph and checked against the "
        "model (the same answers, no Python per layer); off: transformers' modules run each call",
        switch, "on",
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


# How many runner threads this worker starts: the process plan's, set by gunicorn's master for its workers; not a
# knob. Absent (a process outside gunicorn, tests' apps): one.
RUNNERS_ENV = "TEXTCLF_WORKER_RUNNERS"


def worker_runners(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    return max(1, int(environ.get(RUNNERS_ENV) or 1))


@dataclass(frozen=True)
class ProcessPlan:
    workers: int
    torch_threads: int  # per forward pass
    devices: tuple[str, ...]  # one CUDA device id per worker slot; empty on CPU
    cores: int
    runners: int = 1  # threads per worker that run forward passes from its one queue of texts

    @property
    def on_gpu(self) -> bool:
        return bool(self.devices)


# Runner threads one CPU worker holds at most. A worker's request threads (HTTP, JSON, tokenising: about 1 ms of
# Python per request) and its runners' Python between forward passes share one interpreter lock; past a few
# runners a second worker costs less than the lock. Measured up to 2 (2-core machines); 4 is a choice.
MAX_CPU_RUNNERS = 4
# What one more CPU worker holds beyond its model's weights: its own pages of the interpreter, the tokenizer and
# activations (make bench: about 300 MB private for MiniLM with torch 2.14), with room to spare. The libraries
# themselves are imported once, by gunicorn's master, and shared (predictor.import_model_code).
CPU_WORKER_OVERHEAD_BYTES = 512 << 20


def memory_available() -> int | None:
    """Bytes this server may still use: MemAvailable, capped by a cgroup v2 memory limit (docker --memory)."""
    found = []
    try:
        meminfo = Path("/proc/meminfo").read_text()
        kib = next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemAvailable:"))
        found.append(int(kib) * 1024)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found, default=None)


def weights_bytes(model_dir: Path) -> int:
    """Size of the model's weight files, which every worker loads into memory of its own."""
    patterns = ("*.safetensors", "*.bin", "*.pt", "*.pth")
    return sum(f.stat().st_size for pattern in patterns for f in model_dir.glob(pattern) if f.is_file())


def cpu_workers_memory_allows(available: int | None, weights: int) -> int | None:
    """How many CPU workers fit in three quarters of the memory available (None: unknown, no bound)."""
    if available is None:
        return None
    return max(1, int(0.75 * available) // (CPU_WORKER_OVERHEAD_BYTES + 2 * weights))


def plan_processes(
    env: ServingEnvironment, settings: ServingSettings, cores: int, gpus: list[str], memory_allows: int | None = None
) -> ProcessPlan:
    """Workers, runner threads and torch threads: on GPU one worker per device, each bound to its own, one runner;
    on CPU workers x runners x torch threads <= cores.

    On CPU, one runner thread per core, each running forward passes on one torch thread, grouped into as few
    workers as hold them (MAX_CPU_RUNNERS each) and as many as fit in memory (each worker holds its own copy of
    the model). The runners of a worker share its one queue of texts: measured on 2 cores (make bench, AMD EPYC,
    float32), one worker with 2 runners held a higher arrival rate under 500 ms than 2 workers of one thread each,
    whose queues were apart. A traced forward pass runs without Python's lock, so 2 runners of one process
    answered 1.8-2.2x the texts of one. One torch thread per pass, not more: torch threads of one pass wait for
    each other at every operation, spinning, so when anything else takes a core (another tenant, a test run) 2
    threads on 2 cores fell to 1.5 requests/s at concurrency 1 where one thread kept 59.
    SAGEMAKER_MODEL_SERVER_WORKERS overrides the worker count (the cores then shared out as runners);
    TEXTCLF_TORCH_THREADS the threads per pass (fewer runners then).
    """
    use_gpu = settings.device != "cpu" and bool(gpus)
    if settings.device == "cuda" and not gpus:
        raise UserError(
            "TEXTCLF_DEVICE=cuda but no GPU is visible.", "Run on a GPU instance or set TEXTCLF_DEVICE=auto."
        )
    if use_gpu and settings.dtype == "int8":
        raise UserError(
            "TEXTCLF_DTYPE=int8 runs on CPU only, and this server would use the GPU.",
            "On a GPU keep TEXTCLF_DTYPE=auto (bfloat16); to serve int8 on CPU set TEXTCLF_DEVICE=cpu.",
        )
    if use_gpu:
        workers = env.workers or len(gpus)
        devices = tuple(gpus[i % len(gpus)] for i in range(workers))
        threads = settings.torch_threads or max(1, cores // workers)
        return ProcessPlan(workers, threads, devices, cores)
    threads = settings.torch_threads or 1
    slots = max(1, cores // threads)  # forward passes the cores run at once
    workers = env.workers or min(-(-slots // MAX_CPU_RUNNERS), memory_allows or slots)
    return ProcessPlan(workers, threads, (), cores, runners=max(1, slots // workers))

"""The server's own knobs (TEXTCLF_*), each defined once with its default and meaning, and the process plan.

SageMaker's variables (SAGEMAKER_*) are parsed in textclf.contract; this module adds the project's knobs and
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
from ..errors import UserError

PREFIX = "TEXTCLF_"
# SIGKILL follows SIGTERM after 30 s on SageMaker: in-flight requests get 20 s, gunicorn's exit the rest.
GRACEFUL_TIMEOUT_S = 20
# Idle keep-alive connections stay open longer than a front-end proxy's usual 60 s idle timeout, so the server is
# never the side that closes a connection the proxy is about to reuse (a reset POST is not retried).
KEEPALIVE_S = 75


@dataclass(frozen=True)
class Knob:
    name: str  # without the prefix
    default: str
    meaning: str


KNOBS = (
    Knob("BATCHING", "on", "on: texts of concurrent requests share forward passes (micro-batching); off: each alone"),
    Knob("MAX_BATCH_SIZE", "32", "most texts in one forward pass"),
    Knob("MAX_BATCH_TOKENS", "8192", "most padded tokens (texts x longest text) in one forward pass"),
    # 0: an idle model starts at once, and texts arriving while it runs form the next batch, so batching costs
    # nothing at low load; a few ms more trades latency for larger batches when requests arrive in bursts.
    Knob("MAX_BATCH_DELAY_MS", "0", "longest a text waits for others to join its batch when the model is idle"),
    Knob("TORCH_THREADS", "auto", "torch threads per worker; auto: (CPU cores - 1) / workers, at least 1"),
    Knob("HTTP_THREADS", "64", "request threads per worker (gunicorn gthread); /ping never queues behind inference"),
    Knob("DEVICE", "auto", "auto (a GPU when there is one), cpu, or cuda"),
    Knob("DTYPE", "auto", "auto (bfloat16 on GPUs that support it, else float32), float32, bfloat16, float16"),
)
KNOB_DEFAULTS = {knob.name: knob.default for knob in KNOBS}


@dataclass(frozen=True)
class ServingSettings:
    batching: bool = True
    max_batch_size: int = 32
    max_batch_tokens: int = 8192
    max_batch_delay_ms: float = 0.0
    torch_threads: int | None = None  # None: decided by plan_processes
    http_threads: int = 64
    device: str = "auto"
    dtype: str = "auto"

    def describe(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _raw(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(PREFIX + name) or KNOB_DEFAULTS[name]).strip()


def _int(environ: Mapping[str, str], name: str, minimum: int = 1) -> int:
    raw = _raw(environ, name)
    try:
        value = int(raw)
    except ValueError:
        raise UserError(
            f"{PREFIX}{name}={raw!r} is not a whole number.", f"Set it to an integer >= {minimum}."
        ) from None
    if value < minimum:
        raise UserError(f"{PREFIX}{name}={value} is below {minimum}.", f"Set it to an integer >= {minimum}.")
    return value


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = _raw(environ, name).lower()
    if value not in choices:
        raise UserError(f"{PREFIX}{name}={value!r} is not one of {', '.join(choices)}.", "Use one of those values.")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> ServingSettings:
    environ = os.environ if environ is None else environ
    batching = _choice(environ, "BATCHING", ("on", "off", "true", "false", "1", "0"))
    delay = _raw(environ, "MAX_BATCH_DELAY_MS")
    try:
        delay_ms = float(delay)
    except ValueError:
        delay_ms = -1.0
    if not 0 <= delay_ms <= 10_000:
        raise UserError(f"{PREFIX}MAX_BATCH_DELAY_MS={delay!r} is not a delay.", "Set milliseconds from 0 to 10000.")
    threads = _raw(environ, "TORCH_THREADS").lower()
    return ServingSettings(
        batching=batching in ("on", "true", "1"),
        max_batch_size=_int(environ, "MAX_BATCH_SIZE"),
        max_batch_tokens=_int(environ, "MAX_BATCH_TOKENS"),
        max_batch_delay_ms=delay_ms,
        torch_threads=None if threads == "auto" else _int(environ, "TORCH_THREADS"),
        http_threads=_int(environ, "HTTP_THREADS", minimum=2),
        device=_choice(environ, "DEVICE", ("auto", "cpu", "cuda")),
        dtype=_choice(environ, "DTYPE", ("auto", "float32", "bfloat16", "float16")),
    )


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

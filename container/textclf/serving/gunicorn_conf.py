"""gunicorn's configuration and hooks, in one file: `gunicorn -c python:textclf.serving.gunicorn_conf`.

Plain settings first (computed from SAGEMAKER_* and TEXTCLF_* by textclf.serving.settings), then the hooks:
on_starting (master: run directory, resolved settings logged once), pre_fork (master: a GPU slot per worker),
post_fork (worker: bind its GPU, its thread counts, its readiness marker), child_exit (master: clean up after a
dead worker, however it died), on_exit (master). The app is never preloaded: CUDA touched in the master breaks
forked workers, so each worker loads the model itself, in the background. On CPU the master imports the libraries
(never the weights), so that the workers share them.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from pathlib import Path

from gunicorn import util as gunicorn_util

from textclf.contract import ml_paths, serving_environment
from textclf.serving.errors import error_body
from textclf.serving.health import RUN_DIR_ENV, WorkerGroup
from textclf.serving.settings import (
    GRACEFUL_TIMEOUT_S,
    KEEPALIVE_S,
    RUNNERS_ENV,
    cpu_count,
    cpu_workers_memory_allows,
    load_settings,
    memory_available,
    plan_processes,
    visible_gpu_ids,
    weights_bytes,
)

_env = serving_environment()
_settings = load_settings()
_model_dir = ml_paths().model_dir
_memory_allows = cpu_workers_memory_allows(memory_available(), weights_bytes(_model_dir))
_plan = plan_processes(_env, _settings, cpu_count(), visible_gpu_ids(), _memory_allows)

# Imported here, in the master, and shared by the workers instead of imported by each
# (predictor.import_model_code). CPU plans only: GPU workers must see their own CUDA_VISIBLE_DEVICES before torch
# starts, and that path has not been measured on a GPU.
_libraries_in_master = not _plan.on_gpu
if _libraries_in_master:
    from textclf.serving.predictor import import_model_code

    import_model_code(_model_dir)
    # What the imports left (hundreds of thousands of objects) goes out of the collector's reach before the fork. A
    # worker's collections would otherwise walk every one of them, writing to each object's header, and so copy the
    # master's pages into the worker: 80 MB more of each worker's own memory, and 0.2 s more of its start for the
    # collection that precedes its own freeze (app.load_builtin), on MiniLM (bench/results/FINDINGS.md, Zen 5).
    gc.freeze()

# --- settings ---------------------------------------------------------------------------------------------------
# No bind here: serve passes `--bind unix:<run dir>/gunicorn.sock`. Only nginx listens on SageMaker's port
# (serving/front.py); it hands over whole requests, so these limits sit above nginx's and never answer first.
limit_request_line = 0  # no limit: nginx's large_client_header_buffers bounds the request line
limit_request_field_size = 65536  # above nginx's per-header limit
limit_request_fields = 32768  # gunicorn's maximum: nginx's total header size bounds the count
permit_unconventional_http_method = True  # any method nginx passes gets the app's JSON 405, not gunicorn's HTML
workers = _plan.workers
worker_class = "gthread"  # request threads: /ping is answered while other threads wait on inference
threads = _settings.http_threads
timeout = _env.timeout_seconds  # SAGEMAKER_MODEL_SERVER_TIMEOUT: also each request's limit on inference
graceful_timeout = GRACEFUL_TIMEOUT_S  # SIGKILL follows SIGTERM after 30 s: drain within 20
keepalive = KEEPALIVE_S
preload_app = False
backlog = 2048  # nginx queues here when every request thread is busy
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # heartbeat files off slow overlay disks
control_socket_disable = True  # no ~/.gunicorn/gunicorn.ctl: several servers (tests) share a machine
accesslog = None  # the app logs one line per request, with its request id
errorlog = "-"
loglevel = _env.log_level.lower()
proc_name = "textclf-serve"

_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": _FORMAT}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"level": _env.log_level, "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": _env.log_level, "handlers": [], "propagate": True},
        "textclf": {"level": _env.log_level, "handlers": [], "propagate": True},
    },
}

log = logging.getLogger("textclf.serving")


def _json_error_page(sock, status: int, reason: str, detail: str) -> None:
    """gunicorn's own refusal of a request it cannot parse, in the JSON error shape instead of its HTML page.
    Rare behind nginx (a control character in a header value passes nginx), but every answer must be JSON.
    gunicorn (pinned) writes all of these through this one function; tests/serving/test_serving_front.py checks."""
    if status >= 500:
        message = f"{reason}; the server log has the cause."
    else:
        message = f"{reason}: {detail}. Send a well-formed HTTP/1.1 request."
    body = error_body(status, message)
    head = f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
    gunicorn_util.write_nonblock(sock, f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body)


gunicorn_util.write_error = _json_error_page


def _run_dir() -> Path:
    return Path(os.environ[RUN_DIR_ENV])


# --- hooks ------------------------------------------------------------------------------------------------------


def on_starting(server) -> None:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    os.environ[RUN_DIR_ENV] = tempfile.mkdtemp(prefix="textclf-serve-", dir=base)
    WorkerGroup.create(_run_dir(), _plan.workers)
    devices = ", ".join(_plan.devices) if _plan.on_gpu else "none (CPU)"
    log.info("model directory %s", _model_dir)
    log.info(
        "process plan: %d workers x %d request threads and %d runner threads of %d torch threads, %d CPU cores, "
        "GPUs: %s; memory for %s CPU workers",
        _plan.workers,
        _settings.http_threads,
        _plan.runners,
        _plan.torch_threads,
        _plan.cores,
        devices,
        _memory_allows or "any number of",
    )
    log.info(
        "SageMaker: port=%d workers=%s timeout=%ds max_payload=%dMB batch_transform=%s batch_strategy=%s "
        "max_concurrent_transforms=%s default_accept=%s log_level=%s",
        _env.port,
        _env.workers or "auto",
        _env.timeout_seconds,
        _env.max_payload_mb,
        _env.batch_transform,
        _env.batch_strategy,
        _env.max_concurrent_transforms or "auto",
        _env.default_accept or "auto",
        _env.log_level,
    )
    knobs = _settings.describe() | {"torch_threads": _plan.torch_threads, "runners": _plan.runners}
    log.info("settings: %s", " ".join(f"{k}={v}" for k, v in knobs.items()))


def pre_fork(server, worker) -> None:
    # The lowest slot no live worker holds: a replaced worker takes over its predecessor's GPU.
    taken = {getattr(w, "textclf_slot", None) for w in server.WORKERS.values()}
    worker.textclf_slot = next(slot for slot in range(len(server.WORKERS) + 1) if slot not in taken)


def post_fork(server, worker) -> None:
    slot = getattr(worker, "textclf_slot", 0)
    if _plan.on_gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = _plan.devices[slot % len(_plan.devices)]
    # Before torch is imported (in the loader thread): its pools size themselves from these.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(_plan.torch_threads)
    os.environ[RUNNERS_ENV] = str(_plan.runners)
    if _libraries_in_master:  # torch's pools read those variables when the master imported it
        import torch

        torch.set_num_threads(_plan.torch_threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    log.info(
        "worker %d started (slot %d%s)",
        worker.pid,
        slot,
        f", GPU {os.environ['CUDA_VISIBLE_DEVICES']}" if _plan.on_gpu else "",
    )


def child_exit(server, worker) -> None:
    # Runs in the master for every worker that ends, even one killed by SIGKILL: its marker must not count.
    WorkerGroup(_run_dir()).clear(worker.pid)


def worker_exit(server, worker) -> None:
    log.info("worker %d exiting", worker.pid)


def on_exit(server) -> None:
    shutil.rmtree(os.environ.get(RUN_DIR_ENV, ""), ignore_errors=True)
    log.info("server stopped")

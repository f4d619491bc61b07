"""Model life cycle per worker, and readiness across workers.

Each worker loads the model in a background thread (gunicorn's worker timeout also runs while a worker boots, so
a slow load must not block it), runs a warm-up prediction, and only then turns READY. `/ping` answers 200 when
this worker is READY and every worker of the server is: SageMaker sends traffic once /ping says 200, and any
worker may take it. Each ready worker leaves a marker file named by its pid in a directory that gunicorn's master
creates and cleans, beside a file holding how many workers there are.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("textclf.serving")

# gunicorn's arbiter halts the whole server when a worker exits with this code ("Worker failed to boot"):
# a model that cannot load will not load on the next try either, and a dead container is a clearer signal to
# SageMaker than a /ping stuck at 503 until its 4-minute deadline.
WORKER_BOOT_ERROR = 3


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"


RUN_DIR_ENV = "TEXTCLF_RUN_DIR"  # the group's directory, set by gunicorn's master for its workers; not a knob
WORKER_COUNT_FILE = "workers"


class WorkerGroup:
    """Readiness markers of all workers; `run_dir` None means a single process (tests with test_client)."""

    def __init__(self, run_dir: Path | None = None, expected: int = 1) -> None:
        self.run_dir = run_dir
        self.expected = expected

    @classmethod
    def create(cls, run_dir: Path, workers: int) -> WorkerGroup:
        """In gunicorn's master, before any worker starts: record how many workers must be ready."""
        (run_dir / WORKER_COUNT_FILE).write_text(str(workers))
        return cls(run_dir, workers)

    @classmethod
    def join(cls, run_dir: Path) -> WorkerGroup:
        """In a worker: the group its master created."""
        return cls(run_dir, int((run_dir / WORKER_COUNT_FILE).read_text()))

    def mark_ready(self, pid: int) -> None:
        if self.run_dir is not None:
            (self.run_dir / f"ready-{pid}").touch()

    def clear(self, pid: int) -> None:
        if self.run_dir is not None:
            (self.run_dir / f"ready-{pid}").unlink(missing_ok=True)

    def all_ready(self) -> bool:
        if self.run_dir is None:
            return True
        alive = 0
        for marker in self.run_dir.glob("ready-*"):
            try:
                os.kill(int(marker.name[6:]), 0)
            except (ValueError, ProcessLookupError):
                continue  # a worker killed before the master could clean its marker
            except PermissionError:
                pass
            alive += 1
        return alive >= self.expected


class ModelLoader:
    """Loads the model in a background thread and warms it up: `load` returns what requests will use (the
    Inference object), and only then is this worker READY."""

    def __init__(
        self,
        load: Callable[[], Any],
        group: WorkerGroup | None = None,
        exit_on_failure: bool = False,
    ) -> None:
        self._load = load
        self.group = group or WorkerGroup()
        self.exit_on_failure = exit_on_failure
        self.state = State.STARTING
        self.error: str | None = None
        self.inference: Any = None  # textclf.serving.inference.Inference, once loaded
        self.started = time.monotonic()
        self._thread: threading.Thread | None = None

    def start(self) -> ModelLoader:
        self._thread = threading.Thread(target=self._run, name="textclf-loader", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> State:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def _run(self) -> None:
        try:
            self.inference = self._load()
        except BaseException as exc:  # noqa: BLE001 - reported, then the worker stops the server
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = State.FAILED
            log.exception("the model failed to load")
            if self.exit_on_failure:
                log.critical("stopping: the model cannot be served (%s)", self.error)
                logging.shutdown()
                os._exit(WORKER_BOOT_ERROR)
            return
        self.state = State.READY
        self.group.mark_ready(os.getpid())
        log.info("worker %d ready in %.1f s", os.getpid(), time.monotonic() - self.started)

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    def health(self) -> tuple[bool, str]:
        """(healthy, why not) for /ping."""
        if self.state is State.FAILED:
            return False, f"The model failed to load: {self.error}"
        if self.state is State.STARTING:
            return False, f"The model is loading ({time.monotonic() - self.started:.0f} s so far)."
        if not self.group.all_ready():
            return False, "Another worker is still loading the model."
        return True, ""

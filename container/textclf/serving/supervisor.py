"""`serve`'s processes: gunicorn (the app, on a unix socket) and nginx (SageMaker's port), run and stopped together.

The supervisor is PID 1 in the container, so SageMaker's SIGTERM reaches it, and it reaps every process that ends.
It starts gunicorn, then nginx once gunicorn listens (so the first answer on the port is the app's 503 "loading",
never a 502). On SIGTERM or SIGINT it drains in order: nginx stops accepting and finishes the requests in flight,
which gunicorn still answers; then gunicorn stops. If either process ends on its own, the other is stopped and
`serve` exits non-zero with the cause in the log: a server with half its parts is of no use to SageMaker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .front import FrontLimits, NginxBuild, nginx_command, render_config, worker_connections
from .settings import GRACEFUL_TIMEOUT_S

log = logging.getLogger("textclf.serving.supervisor")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Everything is gone by then, whatever hangs: SageMaker sends SIGKILL 30 s after SIGTERM.
STOP_DEADLINE_S = GRACEFUL_TIMEOUT_S + 7
POLL_S = 0.05
SOCKET_NAME = "gunicorn.sock"
_PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Children get SIGTERM if the supervisor dies without stopping them (killed outright outside a container),
    instead of holding the port. In their own session: a terminal's Ctrl-C reaches the supervisor only, which
    then drains in order."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Child:
    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(command, start_new_session=True, preexec_fn=_stop_with_parent)  # noqa: PLW1509
        self.status: int | None = None  # the wait status once reaped

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.status is None

    @property
    def exit_code(self) -> int:
        """As a shell reports it: the exit status, or 128 + the signal that ended it."""
        code = os.waitstatus_to_exitcode(self.status) if self.status is not None else 0
        return 128 - code if code < 0 else code

    def send(self, sig: int) -> None:
        if self.alive:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL to the child and whatever it started: an nginx worker outlives a killed master, still
        accepting on the port; gunicorn's workers would finish their requests for nobody."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Supervisor:
    def __init__(self, gunicorn_command: list[str], nginx: NginxBuild, limits: FrontLimits, log_level: str) -> None:
        self.gunicorn_command = gunicorn_command
        self.nginx = nginx
        self.limits = limits
        self.log_level = log_level
        self.children: dict[str, Child] = {}
        self.stop_signal: int | None = None

    def run(self) -> int:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        # Under the temp directory, not /dev/shm: nginx buffers large request bodies here (a tmpfs /tmp works).
        run_dir = Path(tempfile.mkdtemp(prefix="textclf-front-"))
        try:
            self._start(run_dir)
            while self.stop_signal is None and all(child.alive for child in self.children.values()):
                time.sleep(POLL_S)
                self._reap()
            return self._stop()
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _on_signal(self, sig: int, _frame) -> None:
        if self.stop_signal is None:
            self.stop_signal = sig

    def _start(self, run_dir: Path) -> None:
        socket = run_dir / SOCKET_NAME
        connections = worker_connections()
        gunicorn = self.children["gunicorn"] = Child("gunicorn", [*self.gunicorn_command, "--bind", f"unix:{socket}"])
        while not socket.exists():
            self._reap()
            if not gunicorn.alive or self.stop_signal is not None:
                return
            time.sleep(POLL_S / 2)
        config = run_dir / "nginx.conf"
        config.write_text(render_config(self.limits, run_dir, socket, self.nginx, self.log_level, connections))
        self.children["nginx"] = Child("nginx", nginx_command(self.nginx, config))
        log.info(
            "nginx on 0.0.0.0:%d in front of gunicorn on %s (client timeout %d s, proxy timeout %d s, %d connections)",
            self.limits.port,
            socket,
            self.limits.client_timeout_s,
            self.limits.proxy_timeout_s,
            connections,
        )

    def _reap(self) -> None:
        """Collect every ended child, ours or an orphan handed to PID 1."""
        by_pid = {child.pid: child for child in self.children.values()}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in by_pid:
                by_pid[pid].status = status
                by_pid[pid].process.returncode = os.waitstatus_to_exitcode(status)

    def _wait(self, child: Child, deadline: float) -> bool:
        while child.alive and time.monotonic() < deadline:
            time.sleep(POLL_S)
            self._reap()
        return not child.alive

    def _stop(self) -> int:
        started = time.monotonic()
        gunicorn, nginx = self.children.get("gunicorn"), self.children.get("nginx")
        failed = next((child for child in self.children.values() if not child.alive), None)
        if self.stop_signal is not None and failed is None:
            log.info(
                "%s received: draining (no new connections; requests in flight are answered)",
                signal.Signals(self.stop_signal).name,
            )
        elif failed is not None:
            log.error("%s exited with code %d; stopping the server", failed.name, failed.exit_code)
            failed.kill_group()
        if nginx is not None and nginx.alive:
            # SIGQUIT: graceful, while gunicorn can still answer; SIGTERM: at once, when there is nothing to drain.
            nginx.send(signal.SIGQUIT if gunicorn is not None and gunicorn.alive else signal.SIGTERM)
            if not self._wait(nginx, started + self.limits.shutdown_timeout_s + 2):
                log.error("nginx did not stop in time; killing it")
                nginx.kill_group()
                self._wait(nginx, time.monotonic() + 2)
        if gunicorn is not None and gunicorn.alive:
            gunicorn.send(signal.SIGTERM)
            if not self._wait(gunicorn, started + STOP_DEADLINE_S):
                log.error("gunicorn did not stop in time; killing it")
                gunicorn.kill_group()
                self._wait(gunicorn, time.monotonic() + 2)
        if failed is not None:
            return failed.exit_code or 1
        codes = [child.exit_code for child in self.children.values() if child.exit_code]
        return codes[0] if codes else 0

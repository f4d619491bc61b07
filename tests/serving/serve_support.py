"""Start `serve` for real, as SageMaker does, on a free loopback port, and talk to it over HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from support import SERVE

SAMPLE = {
    "sport": "The striker scored a late goal as the team won the league match at the stadium.",
    "weather": "Forecast says heavy rain and strong wind, then a cold frost and snow tomorrow.",
    "finance": "Shares fell as the bank raised interest rates and investors sold bonds.",
    "tech": "The startup released new software for the laptop chip and a faster cloud server.",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (gunicorn's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


class Server:
    """One `serve` process with its own /opt/ml tree whose model/ links to `model_dir` (None: no model at all)."""

    def __init__(self, model_dir: Path | None, **env: str) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="serve-test-"))
        if model_dir is not None:
            (self.base / "model").symlink_to(model_dir, target_is_directory=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "serve.log"
        self.env = dict(
            os.environ,
            SAGEMAKER_BASE_DIR=str(self.base),
            SAGEMAKER_BIND_TO_PORT=str(self.port),
            PYTHONUNBUFFERED="1",
            HF_HUB_OFFLINE="1",
        )
        self.env.update(env)
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()

    def start(self) -> Server:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(SERVE)], env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.started = time.monotonic()
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ping(self, timeout: float = 2.0) -> requests.Response:
        return requests.get(f"{self.url}/ping", timeout=timeout)

    def wait_ready(self, timeout: float = 120) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited with {self.process.returncode}:\n{self.log[-4000:]}"
            try:
                if self.ping().status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve not ready within {timeout} s:\n{self.log[-4000:]}")

    def post(self, body, content_type: str = "application/json", accept: str | None = None, **kwargs):
        headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
        if accept:
            headers["Accept"] = accept
        data = body if isinstance(body, (bytes, str)) else __import__("json").dumps(body)
        return self.session.post(f"{self.url}/invocations", data=data, headers=headers, timeout=60, **kwargs)

    def child(self, name: str) -> int:
        """The pid of serve's `gunicorn` or `nginx` child."""
        for pid in children(self.process.pid):
            try:
                if name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        raise AssertionError(f"serve has no {name} child:\n{self.log[-3000:]}")

    def workers(self) -> list[int]:
        """gunicorn's workers (serve runs nginx and gunicorn; gunicorn runs the workers)."""
        return children(self.child("gunicorn"))

    def stop(self, timeout: float = 30) -> int:
        self.session.close()  # no idle keep-alive connection for the worker to linger on
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "_log"):
            self._log.close()
        shutil.rmtree(self.base, ignore_errors=True)
        return self.process.returncode if self.process else 0

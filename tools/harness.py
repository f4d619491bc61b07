"""`train` and `serve` run as SageMaker runs them, for the tests and the benchmarks: an /opt/ml tree laid out by
hand, `train` as a subprocess over it, and `serve` as a subprocess on a free loopback port, talked to over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from sample_data import write_rows

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "train"
SERVE = REPO / "serve"


# --- train ------------------------------------------------------------------------------------------------------


def make_ml_tree(
    base: Path,
    hyperparameters: dict[str, str] | None = None,
    channels: dict[str, list[dict] | Path] | None = None,
    channel_format: str = "csv",
) -> Path:
    """An /opt/ml tree under `base`: all three config files and one directory per channel.

    A channel given as rows is written as one file; one given as a Path is copied (files or a model directory).
    """
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters or {}))
    channels = channels or {}
    data_config = {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for name in channels}
    (config / "inputdataconfig.json").write_text(json.dumps(data_config))
    resource = {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
    (config / "resourceconfig.json").write_text(json.dumps(resource))
    for name, content in channels.items():
        target = base / "input" / "data" / name
        target.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            subprocess.run(["cp", "-r", f"{content}/.", str(target)], check=True)
        else:
            write_rows(target / f"{name}.{channel_format}", content, channel_format)
    return base


def train_env(base: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def run_train(base: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """`train` as a subprocess, as SageMaker starts it (here with the caller's interpreter)."""
    return subprocess.run(
        [sys.executable, str(TRAIN)], env=train_env(base, **env), capture_output=True, text=True, timeout=timeout
    )


def start_train(base: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(TRAIN)],
        env=train_env(base, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def failure_text(base: Path) -> str:
    path = base / "output" / "failure"
    return path.read_text() if path.exists() else ""


# --- serve ------------------------------------------------------------------------------------------------------


def sitecustomize_env(folder: Path, source: str) -> dict[str, str]:
    """The environment that makes every Python process started with it run `source` first, as a sitecustomize
    module: how a test stands in for a platform fault inside torch (a missing kernel, a wrong one) while the code
    under test runs unchanged."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(source)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


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


# For tests about one worker's own state (its pid, its log, its memory): on CPU `serve` runs a worker per core.
ONE_WORKER = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}


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

    def wait_exit(self, timeout: float) -> int:
        """serve's exit code, once it has exited by itself within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.process.poll() is not None, f"serve still running after {timeout} s:\n{self.log[-3000:]}"
        return self.process.returncode

    def pings_until_exit(self, timeout: float) -> set[int]:
        """The /ping statuses seen while serve runs, polled until it exits (or `timeout` seconds pass)."""
        statuses: set[int] = set()
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                statuses.add(self.ping(timeout=1).status_code)
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return statuses

    def post(self, body, content_type: str = "application/json", accept: str | None = None, **kwargs):
        headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
        if accept:
            headers["Accept"] = accept
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.session.post(f"{self.url}/invocations", data=data, headers=headers, timeout=60, **kwargs)

    def probabilities(self, texts: list[str]) -> list[dict[str, float]]:
        """Every label's probability for each text, asked in one request (one padded batch)."""
        response = self.post({"inputs": texts, "parameters": {"top_k": None}})
        assert response.status_code == 200, response.text
        return [{entry["label"]: entry["score"] for entry in answer} for answer in response.json()]

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

    def batch_stats(self, tries: int = 200) -> dict[str, int]:
        """Every worker's /stats counters summed: one GET reaches one worker, so ask until each pid has answered."""
        pids = set(self.workers())
        seen: dict[int, dict] = {}
        for _ in range(tries):
            # A fresh connection each time, so that gunicorn may hand it to another worker.
            body = requests.get(f"{self.url}/stats", headers={"Connection": "close"}, timeout=5).json()
            seen[body["pid"]] = body
            if pids <= seen.keys():
                break
        assert pids <= seen.keys(), f"workers {sorted(pids - seen.keys())} never answered /stats"
        return {
            "batches": sum(s["batches"] for s in seen.values()),
            "shared_batches": sum(s["shared_batches"] for s in seen.values()),
            "largest_batch": max(s["largest_batch"] for s in seen.values()),
        }

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


# --- prepare (a processing job) ---------------------------------------------------------------------------------

PREPARE = REPO / "prepare"


def largest_difference(a: list[dict[str, float]], b: list[dict[str, float]]) -> float:
    """The largest gap between two servers' probabilities (Server.probabilities) for the same texts and labels."""
    return max(abs(x[label] - y[label]) for x, y in zip(a, b, strict=True) for label in x)


@contextlib.contextmanager
def servers_side_by_side(model_dir: Path, *environments: dict[str, str]) -> Iterator[list[Server]]:
    """One ready server per environment, all on `model_dir`: started together (their loading overlaps) and stopped
    together, whatever happens in between. For comparing one model's answers under two settings."""
    servers = [Server(model_dir, **env).start() for env in environments]
    try:
        yield [server.wait_ready() for server in servers]
    finally:
        for server in servers:
            server.stop()


def make_processing_tree(base: Path, inputs: dict[str, dict[str, list[dict] | bytes | str] | Path]) -> Path:
    """A processing job's /opt/ml tree under `base`: each input a directory under processing/input, given as
    {file name: rows (written by the name's format) or raw content} or as a Path to copy (a model directory)."""
    for name, content in inputs.items():
        target = base / "processing" / "input" / name
        target.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            subprocess.run(["cp", "-r", f"{content}/.", str(target)], check=True)
            continue
        for file_name, data in content.items():
            path = target / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            elif isinstance(data, str):
                path.write_text(data, encoding="utf-8")
            else:
                write_rows(path, data, "jsonl" if file_name.endswith(".jsonl") else "csv")
    return base


def run_prepare(base: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`prepare` as a subprocess over the tree at `base`, as a processing job starts it (here with our Python)."""
    return subprocess.run(
        [sys.executable, str(PREPARE), *args], env=train_env(base), capture_output=True, text=True, timeout=timeout
    )


def exit_message(base: Path) -> str:
    path = base / "output" / "message"
    return path.read_text() if path.exists() else ""

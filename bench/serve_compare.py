"""Serving side by side: our `serve` and the tutorial baseline (bench/baseline_server.py), started in turns on the
same model directory and the same cores, each measured the same way.

Per start: cold start (process start to the first `/ping` 200), resident memory of the workers, concurrency 1 and
16 (wrk, closed loop), then open-loop arrival rates (oha) climbing until p99 passes the SLO twice in a row.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from harness import Server, children, free_port
from loadgen import run_oha, run_wrk

REPO = Path(__file__).resolve().parents[1]


def terminate(process: subprocess.Popen) -> None:
    """SIGTERM, as SageMaker stops a container, then SIGKILL after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class BaselineServer:
    """The tutorial deployment: gunicorn sync workers, each with its own pipeline, on a free loopback port."""

    def __init__(self, model_dir: Path, workers: int, threads: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers_count = workers
        self.env = dict(
            os.environ, BASELINE_MODEL_DIR=str(model_dir), BASELINE_TORCH_THREADS=str(threads), HF_HUB_OFFLINE="1"
        )
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    def start(self) -> BaselineServer:
        command = [
            sys.executable, "-m", "gunicorn", "-w", str(self.workers_count), "-b", f"127.0.0.1:{self.port}",
            "--timeout", "120", "--chdir", str(REPO / "bench"), "baseline_server:app",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def stop(self) -> None:
        terminate(self.process)
        self.log.close()


class TeiServer:
    """Hugging Face's text-embeddings-inference (TEI): the router binary `router` that the user built for CPU (this
    repository neither builds nor ships it), on the same model directory, with its own defaults (every core,
    its own batching), answering the same `/ping` and `/invocations` ({"inputs": "text"}: its /predict).

    TEI reads a text up to the model's position limit (512) and truncates past it; ours and the baseline cut at the
    training max_length. A scratch view of the model directory adds TEI's own setting for that,
    sentence_bert_config.json's max_seq_length, so that every server reads the same tokens."""

    def __init__(self, router: Path, model_dir: Path, max_length: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.view = Path(tempfile.mkdtemp(prefix="tei-model-"))
        for item in model_dir.iterdir():
            (self.view / item.name).symlink_to(item)
        (self.view / "sentence_bert_config.json").write_text(f'{{"max_seq_length": {max_length}}}\n')
        self.router = router
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    def start(self) -> TeiServer:
        command = [
            str(self.router), "--model-id", str(self.view), "--hostname", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def workers(self) -> list[int]:
        return [self.process.pid]  # one process: its threads tokenise and run the model

    def stop(self) -> None:
        terminate(self.process)
        self.log.close()
        shutil.rmtree(self.view, ignore_errors=True)

    @staticmethod
    def version(router: Path) -> str:
        return subprocess.run([str(router), "--version"], capture_output=True, text=True).stdout.strip()


class Ours(Server):
    """Our `serve`, from this tree or from another checkout (`tree`: a change measured before and after)."""

    def __init__(self, model_dir: Path, tree: Path | None = None, **env: str) -> None:
        super().__init__(model_dir, SAGEMAKER_CONTAINER_LOG_LEVEL="WARNING", **env)
        self.serve = (tree or REPO) / "serve"

    def start(self) -> Ours:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, str(self.serve)]
        self.process = subprocess.Popen(command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        return self


def parse_variant(spec: str) -> tuple[Path | None, dict[str, str]]:
    """'KEY=VALUE,...' environment for our serve; the key `tree` names another checkout to run it from."""
    pairs = dict(item.split("=", 1) for item in spec.split(",") if item)
    tree = pairs.pop("tree", None)
    return (Path(tree).resolve() if tree else None), pairs


def _memory_kb(pid: int) -> dict[str, int]:
    """The kernel's memory summary of one process (kB), empty if it has gone."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    except OSError:
        return {}
    return {line.split(":")[0]: int(line.split()[1]) for line in lines}


def memory_mb(server) -> dict:
    """What the server costs in memory: every process of it together (proportional set size: a page shared by n
    processes counts 1/n in each), and what one more worker costs (its private pages, median over the workers).
    Resident sizes would count the libraries that forked workers share once per worker."""
    processes, frontier = [], [server.process.pid]
    while frontier:
        processes += frontier
        frontier = [child for pid in frontier for child in children(pid)]
    summaries = [_memory_kb(pid) for pid in processes]
    private = [_memory_kb(pid) for pid in server.workers()]
    private = [m.get("Private_Clean", 0) + m.get("Private_Dirty", 0) for m in private if m]
    return {
        "server_pss_mb": sum(m.get("Pss", 0) for m in summaries) / 1024,
        "worker_private_mb": statistics.median(private) / 1024 if private else 0.0,
        "workers": len(private),
    }


def wait_ping(url: str, process: subprocess.Popen, started: float, timeout: float = 180) -> float:
    """Seconds from `started` (before Popen) to the first `/ping` 200."""
    deadline = started + timeout
    session = requests.Session()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode} before it was ready")
        try:
            if session.get(f"{url}/ping", timeout=2).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.02)
    sys.exit(f"server not ready within {timeout} s")


def measure_server(server, tools: dict, plan: dict, slo_ms: float) -> dict:
    """One start of one server, measured from its process start to its last open-loop point."""
    started = time.monotonic()
    server.start()
    cold = wait_ping(server.url, server.process, started)
    url = f"{server.url}/invocations"
    run_wrk(tools["wrk"], url, tools["lua"], 4, 2)  # connections and allocator warm; not reported
    result = {"cold_start_s": cold, "memory": memory_mb(server), "closed": {}, "open": []}
    for connections in (1, 16):
        result["closed"][str(connections)] = run_wrk(tools["wrk"], url, tools["lua"], connections, plan["seconds"])
    misses = 0
    for rate in plan["rates"]:
        point = run_oha(tools["oha"], url, tools["bodies"], rate, plan["seconds"])
        point["held"] = point["p99_ms"] <= slo_ms and point["errors"] <= 0.001 * max(point["requests"], 1)
        result["open"].append(point)
        print(
            f"    rate {rate:5.0f}/s: {point['achieved_rps']:6.1f} answered/s  p50 {point['p50_ms']:8.1f} ms  "
            f"p99 {point['p99_ms']:8.1f} ms  errors {point['errors']}  {'held' if point['held'] else 'MISSED'}",
            flush=True,
        )
        misses = 0 if point["held"] else misses + 1
        if misses == 2:  # two points past the SLO show how it degrades; further ones only take time
            break
    held = [p["rate"] for p in result["open"] if p["held"]]
    result["max_rate_held"] = max(held, default=0.0)
    result["memory_after_load"] = memory_mb(server)
    server.stop()
    return result

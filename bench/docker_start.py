"""The image's own cold start: `docker run -d IMAGE serve` with the model mounted at /opt/ml/model, as an endpoint
starts it, timed from the docker command to the first `/ping` 200 on a loopback port.

This adds what the container costs on top of the server's own start (bench/serve_compare.py measures that):
creating the container, the entrypoint, and reading the image's files from a cold layer cache on the first start.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests
from harness import free_port


def image_exists(image: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    return found.returncode == 0


def one_start(image: str, model_dir: Path, timeout: float = 240) -> float:
    """Seconds from `docker run` to the first /ping 200; the container is removed afterwards."""
    port = free_port()
    name = f"textclf-bench-start-{port}"
    command = [
        "docker", "run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:8080",
        "--volume", f"{model_dir.resolve()}:/opt/ml/model:ro", image, "serve",
    ]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, text=True)
    session = requests.Session()
    try:
        while time.monotonic() - started < timeout:
            try:
                if session.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            running = subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Running}}", name], capture_output=True, text=True
            )
            if running.stdout.strip() != "true":
                log = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
                tail = (log.stdout + log.stderr)[-3000:]
                raise RuntimeError(f"{image} serve exited before /ping answered 200; its log ends:\n{tail}")
            time.sleep(0.02)
        raise RuntimeError(f"{image} serve: /ping not 200 within {timeout:.0f} s")
    finally:
        subprocess.run(["docker", "stop", "--time", "30", name], capture_output=True, text=True)
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, text=True)


def storage_driver() -> str:
    """Docker's storage driver, which the start depends on: every module and library the server imports is read
    through it (fuse-overlayfs, where the kernel's overlay is not allowed, took 2-2.5x the host's time per file)."""
    info = subprocess.run(["docker", "info", "--format", "{{.Driver}}"], capture_output=True, text=True)
    return info.stdout.strip() or "unknown"


def measure(image: str, model_dir: Path, starts: int) -> dict:
    """`starts` cold starts in a row: the first also reads the image from disk, the others find it cached."""
    times = []
    for number in range(starts):
        times.append(one_start(image, model_dir))
        print(f"  docker run {image} serve, start {number + 1}/{starts}: /ping 200 after {times[-1]:.2f} s", flush=True)
    return {"image": image, "starts_s": times, "storage_driver": storage_driver()}

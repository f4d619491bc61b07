"""The image's own cold start: `docker run IMAGE serve` with the model mounted at /opt/ml/model, as an endpoint
starts it, timed from the docker command to the first `/ping` 200 on a loopback port.

This adds what the container costs on top of the server's own start (bench/serve_compare.py measures that):
creating the container, the entrypoint, and reading the image's files from a cold layer cache on the first start.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from harness import free_port
from serve_compare import terminate, wait_ping


def image_exists(image: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    return found.returncode == 0


def one_start(image: str, model_dir: Path) -> float:
    """Seconds from `docker run` to the first /ping 200; the container is removed afterwards.

    The container runs attached (no --detach): the docker client lives as long as the container, so the wait
    notices an early exit from the client's own exit, without polling Docker while the start is being timed."""
    port = free_port()
    name = f"textclf-bench-start-{port}"
    command = [
        "docker", "run", "--rm", "--name", name, "--publish", f"127.0.0.1:{port}:8080",
        "--volume", f"{model_dir.resolve()}:/opt/ml/model:ro", image, "serve",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        started = time.monotonic()
        client = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            return wait_ping(f"http://127.0.0.1:{port}", client, started, timeout=240)
        except SystemExit:
            log.seek(0)
            print(log.read().decode(errors="replace")[-3000:], flush=True)  # why it did not start
            raise
        finally:
            subprocess.run(["docker", "stop", "--time", "30", name], capture_output=True, text=True)
            terminate(client)


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

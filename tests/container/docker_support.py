"""Helpers for the real-Docker suite: run the image as SageMaker does, on loopback ports, and clean up after."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from harness import free_port, make_ml_tree
from sample_data import make_rows
from tiny_models import TINY_HYPERPARAMETERS

REPO = Path(__file__).resolve().parents[2]
# Set to test an image that is already built (e.g. one pulled from ECR) instead of building this checkout.
IMAGE_ENV = "TEXTCLF_TEST_IMAGE"
TEST_IMAGE = "sagemaker-text-classifier:container-tests"
LOCAL_BASE = os.environ.get("LOCAL_BASE", "textclf-base:local")
BASE_IMAGE = os.environ.get("BASE_IMAGE", LOCAL_BASE)  # the public base, on a machine that can pull it
SAMPLE_LABELS = {"finance", "sport", "tech", "weather"}
ARBITRARY_USER = "12345:12345"  # a uid/gid with no entry in the image's /etc/passwd


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited with {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def engine_problem(timeout: float = 20) -> str | None:
    """None when a Docker Engine answers; otherwise why not, in one line."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer within {timeout:.0f} s"
    if result.returncode != 0:
        return (result.stderr.strip().splitlines() or ["`docker info` failed"])[-1]
    return None


BUILD_TIMEOUT = 1800  # a cold machine builds the base (about 5 min) and the image (about 3 min)


def image_under_test() -> str:
    """$TEXTCLF_TEST_IMAGE when set (it must exist), else the image built from this checkout by
    docker/build-image.sh (cached layers make a rebuild quick)."""
    given = os.environ.get(IMAGE_ENV)
    if given:
        docker("image", "inspect", given)
        return given
    command = [str(REPO / "docker" / "build-image.sh"), TEST_IMAGE, BASE_IMAGE, LOCAL_BASE]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        raise AssertionError(
            f"building the image failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return TEST_IMAGE


def open_to_any_user(path: Path, writable: bool = False) -> Path:
    """Let an arbitrary container uid read (and write) a mounted tree; pytest makes its temp dirs 0700."""
    mode = "a+rwX" if writable else "a+rX"
    subprocess.run(["chmod", "-R", mode, str(path)], check=True)
    return path


def ml_tree(path: Path, base_model: Path, **hyperparameters: str) -> Path:
    """An /opt/ml tree with the four-topic sample as `train` and `base_model` as the `model` channel, writable
    by any container uid."""
    channels = {"train": make_rows(400), "model": base_model}
    return open_to_any_user(make_ml_tree(path, {**TINY_HYPERPARAMETERS, **hyperparameters}, channels), writable=True)


@dataclass
class TrainedTree:
    base: Path
    result: subprocess.CompletedProcess

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


def container_state(name: str) -> dict:
    return json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)


def logs(name: str) -> str:
    result = docker("logs", name, check=False)
    return result.stdout + result.stderr


class Containers:
    """Names containers `textclf-test-<purpose>-<pid>` (fixed, so a leftover is recognisable; unique per test
    session) and removes every one it named, whatever happened in the test."""

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id
        self.names: list[str] = []

    def name(self, purpose: str) -> str:
        name = f"textclf-test-{purpose}-{self.session_id}"
        docker("rm", "--force", name, check=False)
        self.names.append(name)
        return name

    def remove_all(self) -> None:
        for name in self.names:
            docker("rm", "--force", name, check=False)


class ServingContainer:
    """`docker run -d IMAGE serve` with a model mounted read-only at /opt/ml/model, published on 127.0.0.1 only."""

    def __init__(self, image: str, name: str, model_dir: Path, *, container_port: int = 8080) -> None:
        self.image = image
        self.name = name
        self.model_dir = model_dir
        self.container_port = container_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, *run_args: str, command: tuple[str, ...] = ("serve",)) -> ServingContainer:
        docker(
            "run",
            "--detach",
            "--name",
            self.name,
            "--publish",
            f"127.0.0.1:{self.port}:{self.container_port}",
            "--volume",
            f"{self.model_dir}:/opt/ml/model:ro",
            *run_args,
            self.image,
            *command,
        )
        return self

    def wait_ready(self, timeout: float = 240) -> ServingContainer:
        """Until /ping answers 200: SageMaker gives a container 4 minutes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = container_state(self.name)
            assert state["Running"], f"{self.name} exited with {state['ExitCode']}:\n{logs(self.name)[-4000:]}"
            try:
                if requests.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{self.name}: /ping not 200 within {timeout} s:\n{logs(self.name)[-4000:]}")

    def invoke(self, texts: list[str]) -> requests.Response:
        return requests.post(f"{self.url}/invocations", json={"inputs": texts}, timeout=60)

    def stop(self, grace: int = 30) -> tuple[int, float]:
        """`docker stop` (SIGTERM, then SIGKILL after `grace` s): (exit code, seconds it took)."""
        started = time.monotonic()
        docker("stop", "--time", str(grace), self.name, timeout=grace + 30)
        return container_state(self.name)["ExitCode"], time.monotonic() - started


def assert_predictions(response: requests.Response, count: int) -> list[dict]:
    assert response.status_code == 200, response.text
    answer = response.json()
    assert isinstance(answer, list) and len(answer) == count, answer
    for prediction in answer:
        assert prediction["label"] in SAMPLE_LABELS, prediction
        assert 0.0 <= prediction["score"] <= 1.0, prediction
    return answer

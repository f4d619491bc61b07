"""`docker run IMAGE serve` with a trained model at /opt/ml/model, as a SageMaker endpoint runs it."""

from __future__ import annotations

import shutil
import threading

import pytest
import requests
from docker_support import ARBITRARY_USER, ServingContainer, assert_predictions, docker, logs
from sample_data import make_rows

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

# Texts in the style of the training data (the tiny model knows only its words), one per topic, unseen in training.
ROWS = make_rows(4, seed=2024)
TEXTS = [row["text"] for row in ROWS]


def test_serve_answers_ping_and_invocations(image, containers, served_model):
    server = ServingContainer(image, containers.name("serve"), served_model).start().wait_ready()
    assert requests.get(f"{server.url}/ping", timeout=2).status_code == 200
    answer = assert_predictions(server.invoke(TEXTS), len(TEXTS))
    assert [prediction["label"] for prediction in answer] == [row["label"] for row in ROWS], TEXTS


def test_sagemaker_bind_to_port_moves_the_port(image, containers, served_model):
    server = ServingContainer(image, containers.name("serve-port"), served_model, container_port=9090)
    server.start("--env", "SAGEMAKER_BIND_TO_PORT=9090").wait_ready()
    assert_predictions(server.invoke(TEXTS[:1]), 1)
    probe = "import socket; socket.create_connection(('127.0.0.1', 8080), timeout=2)"
    refused = docker("exec", server.name, "python3", "-c", probe, check=False)
    assert refused.returncode != 0 and "ConnectionRefusedError" in refused.stderr, "still listening on 8080"


def test_docker_stop_drains_and_exits_in_time(image, containers, served_model):
    server = ServingContainer(image, containers.name("serve-stop"), served_model).start().wait_ready()
    statuses: list[int] = []
    stop_sending = threading.Event()

    def send_until_stopped():  # clients busy while SIGTERM arrives, as on a scale-in
        while not stop_sending.is_set():
            try:
                statuses.append(server.invoke(TEXTS).status_code)
            except requests.RequestException:
                return  # the listener is closed: the server no longer accepts work

    sender = threading.Thread(target=send_until_stopped)
    sender.start()
    try:
        code, seconds = server.stop(grace=30)  # SageMaker sends SIGKILL 30 s after SIGTERM
    finally:
        stop_sending.set()
        sender.join(timeout=60)
    assert code == 0, f"exit {code} (137 would be SIGKILL):\n{logs(server.name)[-3000:]}"
    assert seconds < 15, f"took {seconds:.1f} s to stop"
    assert statuses and set(statuses) == {200}, f"answers while stopping: {sorted(set(statuses))}"


def test_no_argument_under_an_arbitrary_uid_serves(image, containers, served_model):
    # No command (SDK v3 style) and no training input mounted: the entrypoint picks serve, as any uid.
    server = ServingContainer(image, containers.name("serve-uid"), served_model)
    server.start("--user", ARBITRARY_USER, command=()).wait_ready()
    assert "so running serve" in logs(server.name)
    assert_predictions(server.invoke(TEXTS), len(TEXTS))


def test_a_model_file_the_uid_cannot_read_is_named(image, containers, served_model, tmp_path):
    # A file left 0600 by its writer: serving as another uid must say which file and why, not "no such file".
    model = tmp_path / "model"
    shutil.copytree(served_model, model)
    (model / "model.safetensors").chmod(0o600)
    model.chmod(0o755)
    name = containers.name("serve-unreadable")
    result = docker("run", "--name", name, "--user", ARBITRARY_USER, "--volume", f"{model}:/opt/ml/model:ro",
                    image, "serve", timeout=120, check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Permission denied reading /opt/ml/model/model.safetensors (mode 0600" in output, output
    assert "chmod -R a+rX" in output

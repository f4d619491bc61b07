"""`docker run IMAGE serve` with a trained model at /opt/ml/model, as a SageMaker endpoint runs it."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
import requests
from docker_support import ARBITRARY_USER, ServingContainer, assert_predictions, docker, logs
from sample_data import make_rows
from slow_clients import open_stalled_connections, still_open

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


def test_nginx_front_survives_stalled_clients_read_only_as_any_uid(image, containers, served_model):
    # nginx keeps its pid, configuration and buffered bodies, and gunicorn its socket, in the tmpfs /tmp: the
    # image serves with a read-only root filesystem, as any uid, while 200 stalled clients stay connected.
    server = ServingContainer(image, containers.name("serve-front"), served_model)
    server.start("--read-only", "--tmpfs", "/tmp", "--user", ARBITRARY_USER).wait_ready()
    stalled = open_stalled_connections(server.port, 200)
    try:
        for _ in range(10):
            started = time.monotonic()
            assert requests.get(f"{server.url}/ping", timeout=2).status_code == 200
            assert time.monotonic() - started < 1
        answer = server.invoke(TEXTS)
        assert_predictions(answer, len(TEXTS))
        assert answer.headers["Server"] == "nginx"
        big = [row["text"] for row in make_rows(3000, seed=9)]  # ~200 KB: buffered to a file before it is passed on
        assert_predictions(server.invoke(big), len(big))
        refused = requests.post(f"{server.url}/invocations", data=b"x" * (7 << 20), timeout=30)  # over 6 MB
        assert refused.status_code == 413 and json.loads(refused.content)["code"] == 413
        assert all(still_open(sock) for sock in stalled)
    finally:
        for sock in stalled:
            sock.close()
    code, _ = server.stop(grace=30)
    assert code == 0, logs(server.name)[-3000:]


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

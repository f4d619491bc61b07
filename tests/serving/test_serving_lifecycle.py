"""Start-up, readiness, a killed worker, SIGTERM with requests in flight, and models that cannot be served."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from harness import Server
from sample_data import SAMPLE_TEXTS, make_rows


def test_missing_model_directory_stops_serve_with_a_clear_message():
    server = Server(None).start()
    try:
        code = server.wait_exit(30)
        assert code == 2
        assert "serve: cannot start: The model directory" in server.log
        assert "does not exist" in server.log and "SAGEMAKER_BASE_DIR" in server.log
        assert "Traceback" not in server.log
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    finally:
        server.stop()


def test_a_model_from_a_newer_format_is_refused_before_serving(bert_model_dir, tmp_path):
    newer = tmp_path / "newer"
    shutil.copytree(bert_model_dir, newer)
    metadata = json.loads((newer / "textclf.json").read_text())
    (newer / "textclf.json").write_text(json.dumps({**metadata, "format_version": 99}))
    server = Server(newer).start()
    try:
        assert server.wait_exit(30) == 2
        assert "has format_version 99; this image reads up to 2" in server.log
        assert "Traceback" not in server.log
    finally:
        server.stop()


def test_a_model_that_cannot_load_stops_the_server(bert_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bert_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"these are not weights")
    server = Server(broken).start()
    try:
        statuses = server.pings_until_exit(90)
        assert server.wait_exit(1) != 0
        assert 200 not in statuses
        assert "the model failed to load" in server.log and "Worker failed to boot" in server.log
    finally:
        server.stop()


def test_ping_503_then_200_killed_worker_replaced_and_sigterm_loses_nothing(bert_model_dir):
    # Two workers, so that "ready" must mean every worker; a long batch window keeps requests in flight.
    server = Server(
        bert_model_dir,
        SAGEMAKER_MODEL_SERVER_WORKERS="2",
        TEXTCLF_MAX_BATCH_DELAY_MS="1500",
        TEXTCLF_MAX_BATCH_SIZE="64",
    ).start()
    try:
        # 1. From the first answer on, /ping is 503 until both workers have loaded and warmed up.
        statuses = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = server.ping()
            except requests.RequestException:
                time.sleep(0.05)
                continue
            statuses.append(response.status_code)
            if response.status_code == 200:
                break
            assert response.json()["code"] == 503 and "loading" in response.json()["error"]
            time.sleep(0.05)
        assert statuses[0] == 503 and statuses[-1] == 200, statuses
        assert server.log.count(" ready in ") == 2
        first = server.workers()
        assert len(first) == 2

        # 2. A worker killed outright is replaced, and /ping comes back to 200 once the new one is warm.
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            workers = server.workers()
            if len(workers) == 2 and first[0] not in workers and server.log.count(" ready in ") == 3:
                break
            time.sleep(0.2)
        assert server.log.count(" ready in ") == 3, server.log[-3000:]
        server.wait_ready(60)
        assert server.post({"inputs": SAMPLE_TEXTS["sport"]}).status_code == 200

        # 3. SIGTERM while requests wait in the batcher: every one is answered, then serve exits in time.
        texts = [row["text"] for row in make_rows(8, seed=1)]

        def call(text: str) -> requests.Response:
            return requests.post(f"{server.url}/invocations", json={"inputs": [text, text]}, timeout=30)

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, text) for text in texts]
            time.sleep(0.5)
            assert not any(f.done() for f in futures), "requests finished before SIGTERM; widen the batch window"
            server.session.close()
            stopped_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * 8
        assert all(len(a.json()) == 2 for a in answers)
        assert server.wait_exit(25) == 0
        assert time.monotonic() - stopped_at < 25
        assert "Handling signal: term" in server.log and "server stopped" in server.log
    finally:
        server.stop()

"""Work bounds: a request that would outlast the time limit is refused at once, batch transform is told a payload
that fits, and a large request gives its memory back."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
from harness import ONE_WORKER, Server
from sample_data import make_rows


def worker_rss_mb(server: Server) -> float:
    (worker,) = server.workers()
    status = Path(f"/proc/{worker}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


@pytest.fixture(scope="module")
def short_deadline_server(bert_model_dir):
    # Five seconds for a request: the measured token bound is small enough to cross with a payload of a few MB.
    server = Server(
        bert_model_dir, SAGEMAKER_MODEL_SERVER_TIMEOUT="5", SAGEMAKER_MAX_PAYLOAD_IN_MB="20", **ONE_WORKER
    ).start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def test_a_request_over_the_measured_bound_is_refused_at_once_naming_the_setting(short_deadline_server):
    server = short_deadline_server
    bound = int(re.search(r"at most (\d+) tokens per request", server.log).group(1))
    texts = [row["text"] for row in make_rows(200, seed=4)]
    fewest = 7  # tokens of the shortest sample text, [CLS] and [SEP] included: `many` holds more than the bound
    many = texts * (bound // (len(texts) * fewest) + 1)
    assert len(json.dumps({"inputs": many})) < 20 * 1024 * 1024
    started = time.monotonic()
    refused = server.post({"inputs": many})
    assert refused.status_code == 413, refused.text[:300]
    assert f"at most {bound} tokens per request" in refused.json()["error"]
    assert "TEXTCLF_MAX_REQUEST_TOKENS" in refused.json()["error"]
    assert time.monotonic() - started < 10
    assert server.post({"inputs": texts[:20]}).status_code == 200  # and the server goes on


def test_batch_transform_is_told_a_payload_that_fits_the_bound(short_deadline_server):
    server = short_deadline_server
    bound = int(re.search(r"at most (\d+) tokens per request", server.log).group(1))
    advertised = requests.get(f"{server.url}/execution-parameters", timeout=5).json()["MaxPayloadInMB"]
    assert advertised == max(1, min(20, bound // (1024 * 1024)))


def test_the_setting_fixes_the_bound(bert_model_dir):
    server = Server(bert_model_dir, TEXTCLF_MAX_REQUEST_TOKENS="100").start()
    try:
        server.wait_ready()
        assert "at most 100 tokens per request" in server.log
        texts = [row["text"] for row in make_rows(20, seed=5)]  # about 240 tokens
        refused = server.post({"inputs": texts})
        assert refused.status_code == 413 and "at most 100 tokens" in refused.json()["error"]
        assert server.post({"inputs": texts[:4]}).status_code == 200
    finally:
        server.stop()


def test_a_large_request_gives_its_memory_back(bert_model_dir):
    # The bound and the time limit raised, so that this machine's speed cannot refuse the request.
    server = Server(
        bert_model_dir,
        SAGEMAKER_MAX_PAYLOAD_IN_MB="6",
        SAGEMAKER_MODEL_SERVER_TIMEOUT="600",
        TEXTCLF_MAX_REQUEST_TOKENS="2000000",
        **ONE_WORKER,
    ).start()
    try:
        server.wait_ready()
        words = ["rain and wind", "goal", "shares fell", "new chip"]
        server.post({"inputs": words})
        before = worker_rss_mb(server)
        response = server.post({"inputs": words * 25_000})  # 100,000 short texts, 1.6 MB
        assert response.status_code == 200, response.text[:300]
        assert len(response.json()) == 100_000
        grown = worker_rss_mb(server) - before
        assert grown < 150, f"the worker kept {grown:.0f} MB more after a 100,000-text request"
    finally:
        server.stop()

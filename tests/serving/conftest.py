"""Servers for the serving tests: `serve` started for real on models trained by `train` (tests/conftest.py)."""

from __future__ import annotations

import pytest
from harness import Server

# The main server: a 1 MB payload limit keeps the 413 tests cheap; a 20 ms batch window makes cross-request
# batches certain under the concurrency tests; batch transform variables show in /execution-parameters (without
# SAGEMAKER_BATCH itself, which cuts error answers off: test_serving_transform.py).
BERT_ENV = {
    "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
    "TEXTCLF_MAX_BATCH_DELAY_MS": "20",
    "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "3",
    "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD",
}


def _serve(model_dir, **env):
    server = Server(model_dir, **env).start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bert_server(bert_model_dir):
    yield from _serve(bert_model_dir, **BERT_ENV)


@pytest.fixture(scope="module")
def gpt2_server(gpt2_model_dir):
    yield from _serve(gpt2_model_dir, TEXTCLF_MAX_BATCH_DELAY_MS="20")


@pytest.fixture(scope="module")
def multilabel_server(multilabel_model_dir):
    yield from _serve(multilabel_model_dir)


@pytest.fixture(scope="module")
def pair_server(pair_model_dir):
    yield from _serve(pair_model_dir, TEXTCLF_DTYPE="float32")  # its answers are compared with float32 references

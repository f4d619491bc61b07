"""`serve` in a batch transform (SAGEMAKER_BATCH=true): a failed request must fail the job."""

from __future__ import annotations

import http.client
import json

import pytest
from harness import Server


@pytest.fixture(scope="module")
def transform_server(bert_model_dir):
    server = Server(bert_model_dir, SAGEMAKER_BATCH="true").start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def _post(server: Server, body: bytes, content_type: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
    return connection.getresponse()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [(b'{"inputs": "a goal"}\n{"inputs": ""}', "application/jsonlines", 422), (b"a goal", "image/png", 415)],
)
def test_an_error_answer_keeps_its_status_but_cannot_be_read_as_output(transform_server, body, content_type, status):
    # SageMaker reads the status; the SDK's local mode only reads the body, and must not save the error as a line.
    response = _post(transform_server, body, content_type)
    assert response.status == status
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert b'"error"' in cut.value.partial  # the message still goes out, for whoever reads it
    assert "failed in a batch transform" in transform_server.log


def test_the_server_keeps_answering_after_a_failed_request(transform_server):
    _post(transform_server, b"{", "application/json").close()
    response = _post(transform_server, b'{"inputs": "the striker scored"}\n{"inputs": "rain"}', "application/jsonlines")
    assert response.status == 200
    lines = response.read().decode().split("\n")
    assert len(lines) == 2 and all(json.loads(line)["label"] for line in lines)  # no trailing newline

"""The Flask app through test_client(), with a fake predictor: health states, errors, headers. No torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from harness import REPO
from textclf.contract import ServingEnvironment
from textclf.serving.app import build_runner, create_app
from textclf.serving.inference import Inference
from textclf.serving.modelinfo import ModelInfo
from textclf.serving.settings import ServingSettings


class FakePredictor:
    """Logits from word counts: label 'long' wins for texts of more than three words."""

    info = ModelInfo(Path("."), ("short", "long"), 8, False, 0.5, False, "fake")

    def encode(self, inputs, truncation, offset=0):
        encoded = []
        for i, item in enumerate(inputs):
            words = item.text.split()
            if not truncation and len(words) > 8:
                from textclf.serving.errors import InvalidInput

                raise InvalidInput(f"Input {offset + i} is {len(words)} tokens long; the limit is 8 tokens.")
            if item.text == "crash":
                raise RuntimeError("a bug of ours")
            encoded.append({"input_ids": list(range(min(len(words), 8)))})
        return encoded

    def logits(self, batch):
        return [[3.0 - len(f["input_ids"]), len(f["input_ids"]) - 3.0] for f in batch]


def make_app(gate: threading.Event | None = None, fail: bool = False, **env):
    settings = ServingSettings(max_batch_delay_ms=0)
    predictor = FakePredictor()

    def load():
        if gate is not None:
            gate.wait(10)
        if fail:
            raise OSError("weights are corrupt")
        return Inference(predictor, build_runner(predictor.logits, settings), environment.timeout_seconds)

    environment = ServingEnvironment(**env)
    app = create_app(environment, settings, load=load)
    return app, app.extensions["textclf"].loader


def ready_client(**env):
    app, loader = make_app(**env)
    loader.wait(10)
    return app.test_client()


def test_ping_is_503_until_loaded_and_warm_then_200():
    gate = threading.Event()
    app, loader = make_app(gate)
    client = app.test_client()
    response = client.get("/ping")
    assert response.status_code == 503 and "loading" in response.json["error"] and response.json["code"] == 503
    refused = client.post("/invocations", json={"inputs": "hello"})
    assert refused.status_code == 503 and refused.json["code"] == 503
    gate.set()
    loader.wait(10)
    assert client.get("/ping").status_code == 200
    answer = client.post("/invocations", json={"inputs": "hello"}).json  # logits [2, -2]
    assert answer == [{"label": "short", "score": pytest.approx(0.98201, abs=1e-4)}]


def test_a_failed_load_is_reported_by_ping():
    app, loader = make_app(fail=True)
    loader.wait(10)
    response = app.test_client().get("/ping")
    assert response.status_code == 503 and "weights are corrupt" in response.json["error"]


def test_a_fault_of_ours_is_a_500_json_without_traceback_and_serving_goes_on():
    client = ready_client()
    response = client.post("/invocations", json={"inputs": "crash"}, headers={"X-Request-Id": "r-1"})
    assert response.status_code == 500 and response.json["code"] == 500
    assert "r-1" in response.json["error"] and "Traceback" not in response.get_data(as_text=True)
    assert client.post("/invocations", json={"inputs": "one two three four five"}).json[0]["label"] == "long"


def test_payload_limit_by_content_length_and_headers_echoed():
    client = ready_client(max_payload_mb=1)
    big = json.dumps({"inputs": ["word"] * 300_000})
    response = client.post("/invocations", data=big, content_type="application/json")
    assert response.status_code == 413 and "1 MB" in response.json["error"]
    ok = client.post(
        "/invocations",
        json={"inputs": ["a b", "a b c d e"]},
        headers={"X-Amzn-SageMaker-Custom-Attributes": "k=v", "X-Unknown": "1"},
    )
    assert [e["label"] for e in ok.json] == ["short", "long"]
    assert ok.headers["X-Amzn-SageMaker-Custom-Attributes"] == "k=v" and ok.headers["X-Request-Id"]
    assert ok.headers["X-Textclf-Batch-Size"] == "2"


def test_execution_parameters_defaults_outside_batch_transform():
    client = ready_client()
    body = client.get("/execution-parameters").json
    assert body == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


def test_stats_count_texts_and_unknown_routes_answer_json():
    client = ready_client()
    client.post("/invocations", json={"inputs": ["a", "b c"]})
    stats = client.get("/stats").json
    assert stats["state"] == "ready" and stats["batching"] is True and stats["texts"] >= 2
    assert client.get("/missing").json["code"] == 404
    assert client.put("/invocations").json["code"] == 405


def test_http_layer_imports_neither_torch_nor_training():
    # gunicorn's master imports torch only for CPU plans, where the workers share it; with a GPU it must not, as
    # each worker binds its own GPU before torch starts. A visible GPU (no driver needed) makes this a GPU plan.
    code = (
        "import sys; sys.path.insert(0, 'container');"
        "import textclf.serving.app, textclf.serving.cli, textclf.serving.gunicorn_conf;"
        "from textclf.serving.app import create_app;"
        "create_app(load=lambda: (_ for _ in ()).throw(RuntimeError('no model')), exit_on_failure=False);"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers') or "
        "m.startswith('textclf.training')];"
        "assert not bad, bad"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="0")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

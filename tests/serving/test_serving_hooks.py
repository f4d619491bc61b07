"""Inference hooks: `serve` with a team's inference.py (code/ in the model directory, or SAGEMAKER_PROGRAM in
SAGEMAKER_SUBMIT_DIRECTORY), started for real on a model trained by `train`, and talked to over HTTP."""

from __future__ import annotations

import json
import shutil
import signal
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from harness import Server
from sample_data import SAMPLE_TEXTS

LABELS = {"finance", "sport", "tech", "weather"}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inference" / "inference.py"


def with_code(model_dir: Path, target: Path, script: str, name: str = "inference.py") -> Path:
    """A copy of the trained model with `script` as code/<name>."""
    shutil.copytree(model_dir, target)
    (target / "code").mkdir()
    (target / "code" / name).write_text(textwrap.dedent(script))
    return target


@contextmanager
def serving(model_dir: Path | None, **env: str):
    server = Server(model_dir, **env).start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


OUTPUT_ONLY = """
    import json

    def output_fn(prediction, accept):
        # Post-processing only: the built-in model, batching and codecs stay.
        return json.dumps({"labels": [p["label"] for p in prediction], "accept": accept}), "application/json"
"""


@pytest.fixture(scope="module")
def output_only_server(bert_model_dir, tmp_path_factory):
    model = with_code(bert_model_dir, tmp_path_factory.mktemp("hooks") / "model", OUTPUT_ONLY)
    with serving(model, TEXTCLF_MAX_BATCH_DELAY_MS="50", SAGEMAKER_MAX_PAYLOAD_IN_MB="1") as server:
        yield server


def test_output_fn_alone_post_processes_the_built_in_answers_and_keeps_batching(output_only_server):
    server = output_only_server
    answer = server.post({"inputs": [SAMPLE_TEXTS["sport"], SAMPLE_TEXTS["weather"]]})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert len(body["labels"]) == 2 and set(body["labels"]) <= LABELS
    assert body["accept"] == "application/json"  # no Accept: the built-in default reaches output_fn
    # The built-in input_fn still reads every format it reads without hooks.
    assert len(server.post("a, quoted\n", content_type="text/plain").json()["labels"]) == 1
    assert server.post('{"inputs": "x"}\n{"inputs": "y"}', content_type="application/jsonlines").json()["accept"] == (
        "application/jsonlines"
    )

    # Concurrent requests still share forward passes in the built-in batcher.
    def call(i: int) -> requests.Response:
        return requests.post(f"{server.url}/invocations", json={"inputs": [f"text {i}"] * 3}, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(16)))
    assert [a.status_code for a in answers] == [200] * 16
    assert all(len(a.json()["labels"]) == 3 for a in answers)
    stats = server.batch_stats()
    assert stats["shared_batches"] > 0, stats
    assert "defines output_fn; built-in: model_fn, input_fn, predict_fn" in server.log
    assert "warm-up: one request" in server.log


def test_built_in_refusals_keep_their_status_with_hooks(output_only_server):
    answer = output_only_server.post("{not json", content_type="application/json")
    assert answer.status_code == 400 and "Malformed JSON" in answer.json()["error"]
    answer = output_only_server.post({"inputs": []})
    assert answer.status_code == 422
    answer = output_only_server.post(b"x" * (2 * 1024 * 1024), content_type="text/plain")
    assert answer.status_code == 413  # SAGEMAKER_MAX_PAYLOAD_IN_MB holds with hooks (here 1 MB)


FULL_CHAIN = """
    import json
    import os

    def model_fn(model_dir):
        # Any model: here the label names of the trained model, read by hand, and a keyword rule.
        with open(os.path.join(model_dir, "config.json")) as config:
            labels = sorted(json.load(config)["id2label"].values())
        return {"labels": labels, "keywords": {"goal": "sport", "rain": "weather"}}

    def input_fn(body, content_type):
        if content_type == "application/json":
            return json.loads(body)["review"]
        if content_type == "application/x-review":
            return body.decode("utf-8")
        raise ValueError(f"cannot read {content_type}")

    def predict_fn(data, model, context):  # the toolkits' variant with the request context
        label = next((l for word, l in model["keywords"].items() if word in data), model["labels"][0])
        return {"label": label, "model_dir": context.system_properties["model_dir"]}

    def output_fn(prediction, accept):
        return json.dumps({"verdict": prediction["label"], "from": prediction["model_dir"], "accept": accept}), (
            "application/vnd.verdict+json"
        )
"""


def test_the_whole_chain_of_hooks_replaces_model_input_predict_and_output(bert_model_dir, tmp_path):
    model = with_code(bert_model_dir, tmp_path / "model", FULL_CHAIN)
    with serving(model) as server:
        answer = server.post({"review": "What a goal!"}, accept="application/vnd.verdict+json")
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"] == "application/vnd.verdict+json"
        assert answer.json() == {
            "verdict": "sport",
            "from": str(server.base / "model"),
            "accept": "application/vnd.verdict+json",
        }
        answer = server.post(b"rain again", content_type="application/x-review")
        assert answer.json()["verdict"] == "weather"
        # A ValueError from input_fn is the caller's malformed body: 400 with its message.
        answer = server.post(b"hello", content_type="text/plain")
        assert answer.status_code == 400
        assert answer.json() == {"error": "input_fn could not read the request: cannot read text/plain", "code": 400}
        answer = server.post("{broken", content_type="application/json")  # json.loads: a ValueError too
        assert answer.status_code == 400 and answer.json()["error"].startswith("input_fn could not read the request")
        assert "warm-up: model_fn only" in server.log


TRANSFORM_ONLY = """
    import json

    def transform_fn(model, body, content_type, accept):
        return json.dumps(
            {"model": type(model).__name__, "body": type(body).__name__, "content_type": content_type, "accept": accept}
        )
"""


def test_transform_fn_alone_gets_the_built_in_model_and_the_body_as_the_toolkits_pass_it(bert_model_dir, tmp_path):
    model = with_code(bert_model_dir, tmp_path / "model", TRANSFORM_ONLY)
    with serving(model) as server:
        answer = server.post({"inputs": "x"}, accept="application/json")
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
        assert answer.json() == {
            "model": "Inference", "body": "str", "content_type": "application/json", "accept": "application/json"
        }  # fmt: skip
        answer = server.post(b"\x00\x01", content_type="application/octet-stream", accept="*/*")
        assert answer.json()["body"] == "bytes" and answer.json()["accept"] == "application/json"


def test_sagemaker_program_in_the_submit_directory_is_served(bert_model_dir, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "labels.py").write_text('ALWAYS = "tech"\n')  # a neighbour module the script imports
    (code / "serve_hooks.py").write_text(
        textwrap.dedent(
            """
            import labels

            def predict_fn(data, model):
                return [{"label": labels.ALWAYS, "score": 1.0} for _ in data.inputs]
            """
        )
    )
    env = {"SAGEMAKER_PROGRAM": "serve_hooks.py", "SAGEMAKER_SUBMIT_DIRECTORY": str(code)}
    with serving(bert_model_dir, **env) as server:
        answer = server.post("a,b\nc,d", content_type="text/csv; header=absent", accept="text/csv")
        assert answer.status_code == 422  # the built-in input_fn's refusal: two columns
        answer = server.post('"a, b"\nc', content_type="text/csv", accept="text/csv")
        assert answer.status_code == 200 and answer.text == "tech,1.0\ntech,1.0"
        assert "serve_hooks.py defines predict_fn; built-in: model_fn, input_fn, output_fn" in server.log


RAISING = """
    import json

    def input_fn(body, content_type):
        data = json.loads(body)
        if data == "reject":
            raise ValueError("rejects are not read")
        return data

    def predict_fn(data, model):
        if data == "explode":
            raise RuntimeError("the secret sauce spilled")
        return [{"label": "sport", "score": 0.5}]
"""


def test_a_hook_that_raises_is_a_500_naming_it_and_the_server_keeps_serving(bert_model_dir, tmp_path):
    model = with_code(bert_model_dir, tmp_path / "model", RAISING)
    with serving(model) as server:
        answer = server.post('"explode"', headers={"X-Request-Id": "req-boom"})
        assert answer.status_code == 500
        assert answer.json() == {
            "error": "predict_fn raised RuntimeError: the secret sauce spilled (request req-boom; see the server log)",
            "code": 500,
        }
        assert "Traceback" not in answer.text
        assert "Traceback" in server.log and "request req-boom: predict_fn raised RuntimeError" in server.log
        answer = server.post('"reject"')
        assert answer.status_code == 400 and "rejects are not read" in answer.json()["error"]
        answer = server.post('"fine"')
        assert answer.status_code == 200 and answer.json() == [{"label": "sport", "score": 0.5}]


@pytest.mark.parametrize(
    ("script", "cause"),
    [
        ("import textclf_no_such_package\n", "ModuleNotFoundError: No module named 'textclf_no_such_package'"),
        (
            "def model_fn(model_dir):\n    raise OSError('weights missing')\n",
            "model_fn raised OSError: weights missing",
        ),
        (
            "def transform_fn(m, b, c, a):\n    pass\ndef input_fn(b, c):\n    pass\n",
            "defines transform_fn and input_fn: transform_fn replaces the whole chain",
        ),
        ("def output_fn(prediction):\n    pass\n", "output_fn takes 1 arguments; it is called with 2"),
    ],
    ids=["import-error", "model_fn-raises", "transform_fn-with-input_fn", "wrong-signature"],
)
def test_a_script_that_cannot_serve_stops_the_server_at_start_with_the_cause(bert_model_dir, tmp_path, script, cause):
    model = with_code(bert_model_dir, tmp_path / "model", script)
    server = Server(model).start()
    try:
        statuses = server.pings_until_exit(60)
        assert server.wait_exit(1) != 0
        assert 200 not in statuses
        assert cause in server.log
    finally:
        server.stop()


def test_a_syntax_error_stops_serve_before_any_worker_starts(bert_model_dir, tmp_path):
    model = with_code(bert_model_dir, tmp_path / "model", "def output_fn(prediction, accept)\n    return b''\n")
    server = Server(model).start()
    try:
        assert server.wait_exit(30) == 2
        assert "serve: cannot start:" in server.log and "inference.py line 1: " in server.log
        assert "Traceback" not in server.log
    finally:
        server.stop()


def test_a_missing_sagemaker_program_stops_serve_with_a_clear_message(bert_model_dir, tmp_path):
    server = Server(bert_model_dir, SAGEMAKER_PROGRAM="nowhere.py", SAGEMAKER_SUBMIT_DIRECTORY=str(tmp_path)).start()
    try:
        assert server.wait_exit(30) == 2
        assert f"SAGEMAKER_PROGRAM='nowhere.py' names no file: {tmp_path}/nowhere.py does not exist" in server.log
    finally:
        server.stop()


SLOW_MODEL_FN = """
    import os
    import time

    def model_fn(model_dir):
        gate = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gate")
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.05)
        return "slow model"

    def predict_fn(data, model):
        return [{"label": model, "score": 1.0} for _ in data.inputs]
"""


def test_ping_is_not_200_before_model_fn_has_finished(bert_model_dir, tmp_path):
    model = with_code(bert_model_dir, tmp_path / "model", SLOW_MODEL_FN)
    server = Server(model).start()
    try:
        # model_fn waits for the gate file: /ping must stay 503 for as long as it does.
        statuses = []
        deadline = time.monotonic() + 60
        while len(statuses) < 20 and time.monotonic() < deadline:
            assert server.process.poll() is None, server.log[-3000:]
            try:
                statuses.append(server.ping().status_code)
            except requests.RequestException:
                pass
            time.sleep(0.1)
        assert statuses == [503] * 20
        assert server.post({"inputs": "x"}).status_code == 503
        (model / "code" / "gate").touch()
        server.wait_ready(60)
        assert server.post({"inputs": "x"}).json() == [{"label": "slow model", "score": 1.0}]
    finally:
        server.stop()


def test_an_answer_output_fn_cannot_return_is_a_500_naming_it(bert_model_dir, tmp_path):
    script = """
        def input_fn(body, content_type):
            return body

        def predict_fn(data, model):
            return data

        def output_fn(prediction, accept):
            return {"not": "bytes"}
    """
    model = with_code(bert_model_dir, tmp_path / "model", script)
    with serving(model) as server:
        answer = server.post(json.dumps("x"))
        assert answer.status_code == 500
        assert answer.json()["error"] == "output_fn returned dict; return bytes, str or (body, content_type)."


SLOW_PREDICT = """
    import time

    def predict_fn(data, model):
        time.sleep(1.5)  # requests stay in flight while SIGTERM arrives
        return [{"label": "late", "score": 1.0} for _ in data.inputs]
"""


def test_sigterm_drains_requests_in_flight_in_hooks(bert_model_dir, tmp_path):
    model = with_code(bert_model_dir, tmp_path / "model", SLOW_PREDICT)
    server = Server(model).start().wait_ready()
    try:

        def call(i: int) -> requests.Response:
            return requests.post(f"{server.url}/invocations", json={"inputs": f"text {i}"}, timeout=30)

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(call, i) for i in range(4)]
            time.sleep(0.5)
            assert not any(f.done() for f in futures)
            server.session.close()
            server.process.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * 4
        assert all(a.json() == [{"label": "late", "score": 1.0}] for a in answers)
        assert server.wait_exit(25) == 0
    finally:
        server.stop()


def test_the_example_inference_script_serves_its_own_formats(bert_model_dir, tmp_path):
    model = with_code(bert_model_dir, tmp_path / "model", EXAMPLE.read_text())
    with serving(model) as server:
        answer = server.post({"reviews": [SAMPLE_TEXTS["sport"], SAMPLE_TEXTS["finance"]]})
        assert answer.status_code == 200, answer.text
        answers = answer.json()["answers"]
        assert len(answers) == 2 and all(a["label"] in LABELS | {"unsure"} for a in answers)
        assert all(a["label"] == "unsure" or a["score"] >= 0.5 for a in answers)
        refused = server.post({"inputs": "the built-in shape"})
        assert refused.status_code == 400
        assert refused.json()["error"] == 'input_fn could not read the request: send {"reviews": ["text", ...]}'


LIFECYCLE = """
    CALLS = []

    def pre_model_fn(model_dir):
        CALLS.append("pre_model_fn")

    def model_fn(model_dir):
        CALLS.append("model_fn")
        return CALLS

    def model_warmup_fn(model_dir, model):
        model.append("model_warmup_fn")

    def predict_fn(data, model):
        return list(model)
"""


def test_pre_model_fn_and_model_warmup_fn_run_around_model_fn_before_ready(bert_model_dir, tmp_path):
    model = with_code(bert_model_dir, tmp_path / "model", LIFECYCLE)
    with serving(model) as server:
        # The built-in output_fn writes a prediction that is not label/score answers as plain JSON.
        assert server.post({"inputs": "x"}).json() == ["pre_model_fn", "model_fn", "model_warmup_fn"]
        assert server.post({"inputs": "x"}, accept="text/csv").status_code == 406

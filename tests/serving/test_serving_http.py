"""/invocations, /execution-parameters and errors against the real server with a BERT model trained by `train`."""

from __future__ import annotations

import csv
import http.client
import io
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sample_data import SAMPLE_TEXTS, make_rows

TEXTS = list(SAMPLE_TEXTS.values())
ALL_LOGITS = {"top_k": None, "function_to_apply": "none"}


def parse(response: requests.Response) -> list:
    """A response body, whatever its format, as one list entry per input."""
    media = response.headers["Content-Type"].split(";")[0]
    if media == "application/json":
        data = response.json()
        return data if isinstance(data, list) else [data]
    if media == "application/jsonlines":
        return [json.loads(line) for line in response.text.splitlines()]
    assert media == "text/csv", media
    rows = list(csv.reader(io.StringIO(response.text)))
    return [{"label": row[0], "score": float(row[1])} for row in rows]


def logits_by_label(entries: list[dict]) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in entries}


@pytest.fixture(scope="module")
def expected_labels(bert_server) -> list[str]:
    response = bert_server.post({"inputs": TEXTS})
    assert response.status_code == 200, response.text
    return [entry["label"] for entry in response.json()]


# --- formats ----------------------------------------------------------------------------------------------------

REQUESTS = {
    "json-object": ("application/json", json.dumps({"inputs": TEXTS})),
    "json-list": ("application/json", json.dumps(TEXTS)),
    "json-charset": ("application/json; charset=utf-8", json.dumps({"inputs": TEXTS})),
    "jsonlines": ("application/jsonlines", "".join(json.dumps({"inputs": t}) + "\n" for t in TEXTS)),
    "jsonlines-alias": ("application/x-jsonlines", "".join(json.dumps(t) + "\n" for t in TEXTS)),
    "csv-header": ("text/csv; header=present", "text\n" + "".join(f'"{t}"\n' for t in TEXTS)),
    "csv-plain": ("text/csv", "".join(f'"{t}"\n' for t in TEXTS)),
}
ACCEPTS = ["application/json", "application/jsonlines", "text/csv", "*/*", None, "text/html;q=0.9, text/csv;q=0.5"]


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_content_type_answers_in_the_accepted_format_with_the_same_labels(
    bert_server, expected_labels, name, accept
):
    content_type, body = REQUESTS[name]
    response = bert_server.post(body.encode(), content_type, accept)
    assert response.status_code == 200, response.text
    media = response.headers["Content-Type"].split(";")[0]
    if accept in (None, "*/*"):  # no preference: answered in the request's own format
        assert media == content_type.split(";")[0].replace("x-jsonlines", "jsonlines")
    elif accept.startswith("text/html"):
        assert media == "text/csv"
    else:
        assert media == accept
    assert [entry["label"] for entry in parse(response)] == expected_labels


def test_a_single_string_is_answered_in_the_pipeline_shapes(bert_server, expected_labels):
    response = bert_server.post(TEXTS[0].encode(), "text/plain")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()  # the pipeline's shape for one string: a list holding one answer
    assert isinstance(body, list) and len(body) == 1 and body[0]["label"] == expected_labels[0]
    assert 0.0 < body[0]["score"] <= 1.0
    top2 = bert_server.post({"inputs": TEXTS[0], "parameters": {"top_k": 2}}).json()
    assert [type(e) for e in top2] == [dict, dict] and top2[0]["score"] >= top2[1]["score"]
    per_input = bert_server.post({"inputs": TEXTS[:2], "parameters": {"top_k": 3}}).json()
    assert [len(entries) for entries in per_input] == [3, 3]
    every = bert_server.post({"inputs": [TEXTS[0]], "parameters": {"top_k": None}}).json()[0]
    assert sorted(e["label"] for e in every) == ["finance", "sport", "tech", "weather"]
    assert abs(sum(e["score"] for e in every) - 1.0) < 1e-5  # softmax by default
    sigmoid = bert_server.post({"inputs": [TEXTS[0]], "parameters": {"top_k": None, "function_to_apply": "sigmoid"}})
    logits = logits_by_label(bert_server.post({"inputs": [TEXTS[0]], "parameters": ALL_LOGITS}).json()[0])
    for entry in sigmoid.json()[0]:  # each label on its own, whatever the others score
        assert abs(entry["score"] - 1 / (1 + math.exp(-logits[entry["label"]]))) < 1e-6, (entry, logits)


def test_csv_answer_has_one_row_per_input_and_no_header(bert_server):
    response = bert_server.post({"inputs": TEXTS, "parameters": {"top_k": 2}}, accept="text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert len(rows) == len(TEXTS) and all(len(row) == 4 for row in rows)


@pytest.mark.parametrize(
    ("content_type", "body", "texts"),
    [
        ("text/csv", "Text\nrain and wind\n", ["Text", "rain and wind"]),  # a headerless body starting "Text"
        ("text/csv", "text\nrain and wind\n", ["text", "rain and wind"]),  # a lone cell is never a header
        ("text/csv; header=present", "text\nrain and wind\n", ["rain and wind"]),
        ("text/csv", "text,id\nrain and wind,1\ngoal,2\n", ["rain and wind", "goal"]),  # names several columns
        ("text/csv; header=absent", '"text,id"\ngoal\n', ["text,id", "goal"]),
        ("text/csv", "goal\r\nrain\r\n\r\n", ["goal", "rain"]),  # trailing line breaks end the last row
    ],
)
def test_csv_answers_one_row_per_text_record(bert_server, content_type, body, texts):
    response = bert_server.post(body.encode(), content_type, "application/json")
    assert response.status_code == 200, response.text
    alone = [bert_server.post({"inputs": [text], "parameters": ALL_LOGITS}).json()[0] for text in texts]
    together = bert_server.post(body.encode(), content_type, "application/json").json()
    assert len(together) == len(texts)
    assert [entry["label"] for entry in together] == [max(a, key=lambda e: e["score"])["label"] for a in alone]


def test_jsonlines_lines_end_at_newlines_only(bert_server):
    texts = ["rain\u2028and wind", "goal\u2029match", "bank\x85shares", "plain"]
    body = "".join(json.dumps({"inputs": t}, ensure_ascii=False) + "\n" for t in texts).encode()
    response = bert_server.post(body, "application/jsonlines")
    assert response.status_code == 200, response.text
    assert len(response.text.strip("\n").split("\n")) == len(texts)


def test_jsonlines_keeps_order_and_line_count(bert_server):
    texts = [row["text"] for row in make_rows(57, seed=7)]
    singles = [bert_server.post({"inputs": t}).json()[0]["label"] for t in texts]
    lines = [
        json.dumps({"inputs": t, "parameters": {"top_k": 2}} if i % 5 == 0 else {"inputs": t})
        for i, t in enumerate(texts)
    ]
    response = bert_server.post(("\n".join(lines) + "\n").encode(), "application/jsonlines")
    assert response.status_code == 200, response.text
    answers = [json.loads(line) for line in response.text.splitlines()]
    assert len(answers) == len(texts)
    labels = [a[0]["label"] if isinstance(a, list) else a["label"] for a in answers]
    assert labels == singles
    assert all(isinstance(a, list) == (i % 5 == 0) for i, a in enumerate(answers))


def test_long_texts_are_cut_by_default_and_refused_without_truncation(bert_server):
    # ~1,500 tokens: over the 16 windows of 64 tokens the (default) chunked model reads
    long_text = " ".join(["the striker scored a goal"] * 300)
    assert bert_server.post({"inputs": long_text}).status_code == 200
    refused = bert_server.post({"inputs": ["short", long_text], "parameters": {"truncation": False}})
    assert refused.status_code == 422
    message = refused.json()["error"]
    assert "Input 1 is" in message and "tokens long" in message and "reads at most" in message


def test_custom_attributes_echoed_and_unknown_headers_ignored(bert_server):
    headers = {
        "X-Amzn-SageMaker-Custom-Attributes": "trace=abc,tenant=7",
        "X-Amzn-SageMaker-Target-Model": "ignored.tar.gz",
        "X-Something-Else": "whatever",
        "X-Request-Id": "test-request-42",
    }
    response = bert_server.post({"inputs": TEXTS[0]}, headers=headers)
    assert response.status_code == 200
    assert response.headers["X-Amzn-SageMaker-Custom-Attributes"] == "trace=abc,tenant=7"
    assert response.headers["X-Request-Id"] == "test-request-42"
    # One log line per request with its id, method, path, status and milliseconds; /ping not at INFO.
    deadline = time.monotonic() + 5
    while "request test-request-42 POST /invocations 200" not in bert_server.log and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(line for line in bert_server.log.splitlines() if "request test-request-42 " in line)
    assert line.rstrip().split(" POST /invocations 200 ")[1].split()[1] == "ms"
    assert " GET /ping " not in bert_server.log


def test_execution_parameters_follow_the_batch_environment(bert_server):
    response = requests.get(f"{bert_server.url}/execution-parameters", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1}


# --- errors -----------------------------------------------------------------------------------------------------

LONG = " ".join(["rain storm forecast"] * 500)  # over the 16 windows the default chunked model reads
BAD_INPUTS = [
    # (name, content type, body, accept, status, words in the message)
    ("malformed-json", "application/json", b'{"inputs": "x"', None, 400, "Malformed JSON"),
    ("not-utf8-json", "application/json", b'{"inputs": "caf\xe9 \xff"}', None, 400, "not valid utf-8"),
    ("not-utf8-text", "text/plain", b"\xff\xfe\xfa", None, 400, "not valid utf-8"),
    ("no-inputs-key", "application/json", b'{"text": "hello"}', None, 422, 'no "inputs"'),
    ("inputs-number", "application/json", b'{"inputs": 5}', None, 422, "a number"),
    ("inputs-empty-list", "application/json", b'{"inputs": []}', None, 422, "empty list"),
    ("inputs-empty-text", "application/json", b'{"inputs": "  "}', None, 422, "empty text"),
    ("inputs-mixed", "application/json", b'{"inputs": ["ok", 3]}', None, 422, "inputs[1]"),
    ("json-null", "application/json", b"null", None, 422, "null"),
    ("top-k-zero", "application/json", b'{"inputs": "x", "parameters": {"top_k": 0}}', None, 422, "top_k"),
    ("top-k-string", "application/json", b'{"inputs": "x", "parameters": {"top_k": "2"}}', None, 422, "top_k"),
    (
        "bad-function",
        "application/json",
        b'{"inputs": "x", "parameters": {"function_to_apply": "relu"}}',
        None,
        422,
        "function_to_apply",
    ),
    (
        "bad-truncation",
        "application/json",
        b'{"inputs": "x", "parameters": {"truncation": "no"}}',
        None,
        422,
        "truncation",
    ),
    ("unknown-parameter", "application/json", b'{"inputs": "x", "parameters": {"beams": 2}}', None, 422, "beams"),
    (
        "too-long",
        "application/json",
        json.dumps({"inputs": LONG, "parameters": {"truncation": False}}).encode(),
        None,
        422,
        "reads at most",
    ),
    (
        "pair-to-single-text-model",
        "application/json",
        b'{"inputs": {"text": "q", "text_pair": "a"}}',
        None,
        422,
        "trained on single texts",
    ),
    ("empty-text-plain", "text/plain", b"", None, 422, "empty"),
    ("csv-three-columns", "text/csv", b"a,b,c\n", None, 422, "3 columns"),
    ("csv-header-only", "text/csv; header=present", b"text\n", None, 422, "header"),
    ("jsonlines-bad-line", "application/jsonlines", b'{"inputs": "a"}\n{"inputs": \n', None, 400, "line 2"),
    ("xml", "application/xml", b"<inputs>x</inputs>", None, 415, "application/xml"),
    ("image", "image/png", b"\x89PNG", None, 415, "image/png"),
    ("bad-charset", "text/plain; charset=klingon", b"hello", None, 415, "charset"),
    ("accept-html", "application/json", b'{"inputs": "x"}', "text/html", 406, "text/html"),
    ("oversized", "application/json", json.dumps({"inputs": ["rain"] * 200_000}).encode(), None, 413, "1 MB"),
    ("csv-blank-row", "text/csv", b'goal match\n" "\nrain wind\n', None, 422, "CSV row 2 is an empty text"),
    ("csv-empty-row", "text/csv", b"goal match\n\nrain wind\n", None, 422, "CSV row 2 is empty"),
    ("csv-bad-header-param", "text/csv; header=maybe", b"rain\n", None, 422, "header=present"),
    ("lone-surrogate", "application/json", b'{"inputs": ["ok", "a\\ud800b"]}', None, 422, "inputs[1] holds a lone"),
    ("deep-nesting", "application/json", b"[" * 100_000 + b"]" * 100_000, None, 400, "nested too deeply"),
    ("deep-nesting-jsonl", "application/jsonlines", b"[" * 100_000 + b"]" * 100_000, None, 400, "line 1"),
    (
        "return-all-scores-string",
        "application/json",
        b'{"inputs": "x", "parameters": {"return_all_scores": "yes"}}',
        None,
        422,
        "return_all_scores must be true or false",
    ),
]


def check_error(response: requests.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "code"} and body["code"] == status
    assert words.lower() in body["error"].lower(), body["error"]
    assert "Traceback" not in response.text and "<html" not in response.text.lower()


@pytest.mark.parametrize(
    ("name", "content_type", "body", "accept", "status", "words"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_gets_its_json_error_and_the_next_request_succeeds(
    bert_server, expected_labels, name, content_type, body, accept, status, words
):
    check_error(bert_server.post(body, content_type, accept), status, words)
    good = bert_server.post({"inputs": TEXTS})
    assert good.status_code == 200 and [e["label"] for e in good.json()] == expected_labels


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/invocations", 405), ("POST", "/ping", 405), ("GET", "/nowhere", 404), ("DELETE", "/stats", 405)],
)
def test_unknown_routes_and_methods_answer_json(bert_server, method, path, status):
    response = requests.request(method, f"{bert_server.url}{path}", timeout=5)
    check_error(response, status, path)


def test_oversized_body_refused_before_it_is_read(bert_server):
    # Content-Length says 50 MB and no byte of the body follows: the answer must still come, at once.
    connection = http.client.HTTPConnection("127.0.0.1", bert_server.port, timeout=5)
    try:
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", "50000000")
        connection.endheaders(message_body=b'{"inputs": ')
        # getresponse reads the head and then the body by its length, however the packets split them.
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 413, body
    assert json.loads(body)["code"] == 413


def test_oversized_chunked_body_is_cut_at_the_limit(bert_server):
    def chunks():
        piece = json.dumps(["rain storm"] * 1000).encode()
        yield b'{"inputs": ['
        for _ in range(200):  # about 2.6 MB, over the 1 MB limit, without a Content-Length
            yield piece[1:-1] + b","
        yield b'"end"]}'

    response = requests.post(
        f"{bert_server.url}/invocations", data=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    check_error(response, 413, "1 MB")
    assert bert_server.post({"inputs": TEXTS[0]}).status_code == 200


# --- batching and health under load -----------------------------------------------------------------------------


def test_concurrent_clients_share_batches_and_get_their_own_answers(bert_server):
    texts = [row["text"] for row in make_rows(48, seed=11)]
    alone = {t: logits_by_label(bert_server.post({"inputs": t, "parameters": ALL_LOGITS}).json()) for t in texts}
    before = bert_server.batch_stats()

    def client(i: int) -> tuple[list[str], list, int]:
        mine = texts[i::16]  # every client its own texts, 1 to 3 per request
        response = requests.post(
            f"{bert_server.url}/invocations", json={"inputs": mine, "parameters": ALL_LOGITS}, timeout=60
        )
        assert response.status_code == 200, response.text
        return mine, response.json(), int(response.headers["X-Textclf-Batch-Size"])

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(client, range(16)))
    for mine, answers, _ in outcomes:
        assert len(answers) == len(mine)
        for text, entries in zip(mine, answers, strict=True):
            got = logits_by_label(entries)
            assert got.keys() == alone[text].keys()
            assert all(abs(got[label] - alone[text][label]) < 1e-4 for label in got), (text, got, alone[text])
    assert max(size for _, _, size in outcomes) > 1
    after = bert_server.batch_stats()
    assert after["shared_batches"] > before["shared_batches"] and after["largest_batch"] > 1


def test_a_batch_answers_as_each_text_alone(bert_server):
    texts = [row["text"] for row in make_rows(40, seed=3)] + [" ".join(TEXTS), "goal"]  # many lengths
    together = bert_server.post({"inputs": texts, "parameters": ALL_LOGITS}).json()
    for text, entries in zip(texts, together, strict=True):
        alone = logits_by_label(bert_server.post({"inputs": [text], "parameters": ALL_LOGITS}).json()[0])
        got = logits_by_label(entries)
        assert all(abs(got[label] - alone[label]) < 1e-4 for label in alone)


def test_ping_answers_fast_while_invocations_are_busy(bert_server):
    rows = [row["text"] for row in make_rows(8000, seed=5)]
    texts = [" ".join(rows[i : i + 3]) for i in range(0, len(rows), 3)]  # ~40 tokens each
    big = json.dumps({"inputs": texts}).encode()
    assert len(big) < 1024 * 1024
    lock, stop, in_flight, statuses = threading.Lock(), threading.Event(), [0], []

    def heavy():
        while not stop.is_set():
            with lock:
                in_flight[0] += 1
            response = requests.post(
                f"{bert_server.url}/invocations", data=big, headers={"Content-Type": "application/json"}, timeout=120
            )
            with lock:
                in_flight[0] -= 1
            statuses.append(response.status_code)

    threads = [threading.Thread(target=heavy) for _ in range(3)]
    for thread in threads:
        thread.start()
    timings = []
    deadline = time.monotonic() + 60
    try:
        while len(timings) < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
            busy = in_flight[0] > 0
            started = time.monotonic()
            assert bert_server.ping(timeout=2).status_code == 200
            if busy and in_flight[0] > 0:  # only pings that ran beside inference count
                timings.append(time.monotonic() - started)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert len(timings) == 15 and max(timings) < 2.0, timings
    assert statuses and set(statuses) == {200}

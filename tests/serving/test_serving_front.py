"""The front of `serve`: slow and stalled clients, the answers nginx gives itself, and a part that dies."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import threading
import time

import pytest
import requests
from harness import ONE_WORKER, Server
from sample_data import SAMPLE_TEXTS
from slow_clients import open_stalled_connections, still_open

TEXTS = list(SAMPLE_TEXTS.values())
STALLED = 300  # over four times the request threads of one gunicorn worker (TEXTCLF_HTTP_THREADS, 64)


def timed(call) -> tuple[float, object]:
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def summary(seconds: list[float]) -> str:
    if not seconds:
        return "none answered"
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"{len(ordered)} answered, p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


def test_stalled_clients_do_not_take_the_server_down(bert_model_dir):
    server = Server(bert_model_dir).start()
    try:
        server.wait_ready()
        assert "Listening at: unix:" in server.log  # gunicorn is reachable through nginx only
        stalled = open_stalled_connections(server.port, STALLED)
        pings, invocations, failures = [], [], []

        def invoke_repeatedly(stop: threading.Event) -> None:
            while not stop.is_set():
                try:
                    seconds, response = timed(
                        lambda: requests.post(f"{server.url}/invocations", json={"inputs": TEXTS}, timeout=10)
                    )
                    assert response.status_code == 200, response.text
                    invocations.append(seconds)
                except Exception as exc:  # noqa: BLE001 - reported below
                    failures.append(repr(exc))

        stop = threading.Event()
        clients = [threading.Thread(target=invoke_repeatedly, args=(stop,)) for _ in range(2)]
        for client in clients:
            client.start()
        try:
            deadline = time.monotonic() + 8  # well inside nginx's 20 s client timeout: all 300 stay connected
            while time.monotonic() < deadline:
                try:
                    seconds, response = timed(lambda: requests.get(f"{server.url}/ping", timeout=2))
                    assert response.status_code == 200
                    pings.append(seconds)
                except Exception as exc:  # noqa: BLE001 - a ping over SageMaker's 2 s is a failure
                    failures.append(repr(exc))
                time.sleep(0.1)
        finally:
            stop.set()
            for client in clients:
                client.join()
        held = sum(still_open(sock) for sock in stalled)
        print(f"\n{held} stalled connections held; pings {summary(pings)}; invocations {summary(invocations)}")
        assert not failures, failures[:5]
        assert held == STALLED
        assert len(pings) >= 40 and max(pings) < 0.5, pings
        assert len(invocations) >= 10 and max(invocations) < 5, invocations

        # SIGTERM with the stalled clients still connected: the port closes at once, and serve exits 0 in time
        # (nginx drops the stalled connections after its client timeout, before SageMaker's SIGKILL at 30 s).
        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        deadline = stopped_at + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("still accepting connections 5 s after SIGTERM")
        assert server.process.wait(30) == 0, server.log[-3000:]
        print(f"SIGTERM to exit with {STALLED} stalled clients connected: {time.monotonic() - stopped_at:.1f} s")
        assert time.monotonic() - stopped_at < 25
        assert not any(still_open(sock) for sock in stalled)
        for sock in stalled:
            sock.close()
    finally:
        server.stop()


# --- every answer is JSON ---------------------------------------------------------------------------------------

HOST = b"Host: textclf\r\n"
JSON = {"Content-Type": "application/json"}
RAW_REQUESTS = [
    # (name, bytes sent, status, words in the message)
    ("malformed-request-line", b"GARBAGE\r\n\r\n", 400, "not valid HTTP"),
    ("no-host-in-http-1.1", b"GET /ping HTTP/1.1\r\n\r\n", 400, "not valid HTTP"),
    ("header-without-colon", b"GET /ping HTTP/1.1\r\n" + HOST + b"Bad Header\r\n\r\n", 400, "not valid HTTP"),
    (
        "length-and-chunked",
        b"POST /invocations HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "not valid HTTP",
    ),
    ("length-not-a-number", b"POST /invocations HTTP/1.1\r\n" + HOST + b"Content-Length: abc\r\n\r\n", 400, "valid"),
    ("header-of-10-kb", b"GET /ping HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 10240 + b"\r\n\r\n", 431, "8 KB"),
    ("uri-of-10-kb", b"GET /" + b"a" * 10240 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414, "8 KB"),
    (  # nginx passes this one on; gunicorn refuses it
        "control-character-in-a-header",
        b"GET /ping HTTP/1.1\r\n" + HOST + b"X-Name: a\x01b\r\n\r\n",
        400,
        "Send a well-formed HTTP/1.1 request",
    ),
    ("trace", b"TRACE /ping HTTP/1.1\r\n" + HOST + b"\r\n", 405, "not allowed"),
    ("options", b"OPTIONS /ping HTTP/1.1\r\n" + HOST + b"\r\n", 405, "OPTIONS is not allowed on /ping"),
    ("two-letter-method", b"AB /ping HTTP/1.1\r\n" + HOST + b"\r\n", 405, "AB is not allowed"),
    (
        "unknown-transfer-encoding",
        b"POST /invocations HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n",
        501,
        "Transfer-Encoding",
    ),
    ("http-2-request-line", b"GET /ping HTTP/2.0\r\n" + HOST + b"\r\n", 505, "HTTP/1.1"),
    (
        "over-the-payload-limit",
        b"POST /invocations HTTP/1.1\r\n"
        + HOST
        + b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n",
        413,
        "1 MB limit (SAGEMAKER_MAX_PAYLOAD_IN_MB)",
    ),
    ("front-internal-path", b"GET /.textclf/error/400 HTTP/1.1\r\n" + HOST + b"\r\n", 404, "/ping, /invocations"),
]


def raw_exchange(port: int, data: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response, response.read()


@pytest.mark.parametrize(("name", "data", "status", "words"), RAW_REQUESTS, ids=[case[0] for case in RAW_REQUESTS])
def test_the_front_answers_json_to_requests_it_refuses(bert_server, name, data, status, words):
    response, body = raw_exchange(bert_server.port, data)
    assert response.status == status, body
    assert response.getheader("Content-Type").startswith("application/json"), response.getheaders()
    answer = json.loads(body)
    assert set(answer) == {"error", "code"} and answer["code"] == status
    assert words.lower() in answer["error"].lower(), answer["error"]
    assert bert_server.ping().status_code == 200


def test_requests_gunicorn_alone_refused_now_pass(bert_server):
    # 150 headers (gunicorn's own limit was 100) and an Expect: 100-continue upload, as the AWS SDKs send.
    many = b"".join(b"X-Header-%d: %d\r\n" % (i, i) for i in range(150))
    response, body = raw_exchange(bert_server.port, b"GET /ping HTTP/1.1\r\n" + HOST + many + b"\r\n")
    assert response.status == 200, body
    payload = json.dumps({"inputs": TEXTS[0]}).encode()
    with socket.create_connection(("127.0.0.1", bert_server.port), timeout=10) as sock:
        head = b"POST /invocations HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(payload))
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(payload)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200 and "score" in json.loads(response.read())[0]


def test_keep_alive_outlasts_a_proxys_60_s_idle(bert_server):
    connection = http.client.HTTPConnection("127.0.0.1", bert_server.port, timeout=10)
    try:
        connection.request("GET", "/ping")
        first = connection.getresponse()
        first.read()
        assert first.status == 200 and first.getheader("Keep-Alive") == "timeout=75"
        local = connection.sock.getsockname()
        time.sleep(3)
        connection.request("POST", "/invocations", body=json.dumps({"inputs": TEXTS}), headers=JSON)
        second = connection.getresponse()
        assert second.status == 200 and len(json.loads(second.read())) == len(TEXTS)
        assert connection.sock.getsockname() == local  # the same connection, reused after idling
    finally:
        connection.close()


def test_gateway_errors_are_json(bert_model_dir):
    # A 1 s inference limit makes nginx's own limit 6 s; a 0.7 s batch window keeps a request in flight.
    server = Server(
        bert_model_dir, SAGEMAKER_MODEL_SERVER_TIMEOUT="1", TEXTCLF_MAX_BATCH_DELAY_MS="700", **ONE_WORKER
    ).start()
    try:
        server.wait_ready()
        url = f"{server.url}/invocations"
        # 502: the worker dies with the request in flight; gunicorn replaces it.
        (worker,) = server.workers()
        pending = []
        sender = threading.Thread(target=lambda: pending.append(requests.post(url, json={"inputs": TEXTS}, timeout=30)))
        sender.start()
        time.sleep(0.3)
        os.kill(worker, signal.SIGKILL)
        sender.join()
        assert pending[0].status_code == 502 and pending[0].json()["code"] == 502
        assert "closed the connection without answering" in pending[0].json()["error"]
        server.wait_ready(120)

        # 504: gunicorn frozen (master and worker), so neither the app's 503 nor a worker restart can come first.
        frozen = [server.child("gunicorn"), *server.workers()]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            seconds, response = timed(lambda: requests.post(url, json={"inputs": TEXTS}, timeout=30))
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        assert response.status_code == 504, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["code"] == 504 and "within 6 s" in response.json()["error"]
        assert 5.5 < seconds < 10
    finally:
        server.stop()


# --- the parts of serve -----------------------------------------------------------------------------------------


def test_no_nginx_stops_serve_at_once_with_what_to_install(bert_model_dir):
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not os.path.exists(f"{d}/nginx"))
    server = Server(bert_model_dir, PATH=path).start()
    try:
        assert server.process.wait(30) == 2
        lines = server.log.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("serve: cannot start: nginx is not installed"), lines
        assert "apt-get install -y nginx-light" in lines[0]
    finally:
        server.stop()


@pytest.mark.parametrize("part", ["nginx", "gunicorn"])
def test_a_part_that_dies_stops_serve(bert_model_dir, part):
    server = Server(bert_model_dir).start()
    try:
        server.wait_ready()
        os.kill(server.child(part), signal.SIGKILL)
        started = time.monotonic()
        assert server.process.wait(15) == 128 + signal.SIGKILL
        assert time.monotonic() - started < 10
        assert f"{part} exited with code 137; stopping the server" in server.log
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    finally:
        server.stop()

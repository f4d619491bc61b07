"""The Flask application: routes, request logging and headers. gunicorn builds it per worker with create_app().

Routes: GET /ping (health), POST /invocations (the model), GET /execution-parameters (batch transform),
GET /stats (this worker's batching counters). torch is never imported here: the model arrives through the
loader, in the background, and requests reach it through one Inference object.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, g, request

from ..contract import ServingEnvironment, ml_paths, serving_environment
from . import codecs, user_code
from .batcher import DirectRunner, MicroBatcher
from .errors import NotReady, PayloadTooLarge
from .handlers import HookedInference, load_hooked
from .health import RUN_DIR_ENV, ModelLoader, WorkerGroup
from .http_errors import STATUS, json_error, register_error_handlers
from .inference import Inference
from .limits import (
    LARGE_REQUEST_TEXTS,
    TRANSFORMS_PER_WORKER,
    advertised_payload_mb,
    request_limits,
    return_memory,
)
from .settings import ServingSettings, load_settings, worker_runners
from .transform_errors import cut_off

log = logging.getLogger("textclf.serving")

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
REQUEST_ID_HEADERS = ("X-Request-Id", "X-Amzn-SageMaker-Inference-Id", "X-Amzn-RequestId")
EXTENSION = "textclf"
# After a 413, at most this many times the payload limit is read and dropped; beyond it the connection closes.
DISCARD_CAP_FACTOR = 4


@dataclass
class ServerState:
    """Per-app objects, kept in app.extensions["textclf"]."""

    env: ServingEnvironment
    settings: ServingSettings
    loader: ModelLoader
    group: WorkerGroup


def load_model(env: ServingEnvironment, settings: ServingSettings) -> Inference | HookedInference:
    """The real loader: the built-in classifier, or the team's inference script (code/inference.py, or
    SAGEMAKER_PROGRAM) chained with the built-in functions it leaves out. The script is imported here, in each
    worker before it is ready, so an import error stops the server at start, with its traceback in the log."""
    model_dir = ml_paths().model_dir
    script = user_code.locate(env, model_dir)
    if script is None:
        return load_builtin(env, settings)
    log.info("importing the inference script %s", script)
    code = user_code.load(script)
    return load_hooked(code, model_dir, lambda: load_builtin(env, settings), env.default_accept)


def load_builtin(env: ServingEnvironment, settings: ServingSettings) -> Inference:
    """The built-in classifier: read the model directory, load and warm up the predictor, build the runner, and
    bound each request's work by the throughput the warm-up measured."""
    from .modelinfo import describe_model

    started = time.perf_counter()
    info = describe_model(ml_paths().model_dir)
    from .predictor import Predictor  # torch and transformers arrive here, in the loader thread

    imported = time.perf_counter()
    predictor = Predictor(info, settings)
    loaded = time.perf_counter()
    runners = worker_runners()
    runner = build_runner(predictor.logits, settings, runners)

    def run(batch: list) -> list:
        return runner.predict(batch, [len(features["input_ids"]) for features in batch], env.timeout_seconds)[0]

    tokens_per_second = predictor.warm_up(settings.max_batch_size, settings.max_batch_tokens, run)
    limits = request_limits(env, settings, tokens_per_second)
    # torch, transformers and the model leave millions of long-lived objects behind. Every full collection would
    # walk them all while holding the GIL: stalls of ~150 ms that showed as p99 = 7x p50 under load (make bench).
    # Frozen, they are out of the collector's reach; what requests allocate is still collected as usual. On CPU the
    # master froze what it imported before the fork (gunicorn_conf), so this collection walks the worker's own.
    gc.collect()
    gc.freeze()
    log.info(
        "imports %.1f s, model load %.1f s, warm-up %.1f s; %.0f tokens/s, at most %d tokens per request, "
        "%d runner threads",
        imported - started,
        loaded - imported,
        time.perf_counter() - loaded,
        tokens_per_second,
        limits.max_tokens,
        runners,
    )
    return Inference(predictor, runner, env.timeout_seconds, limits)


def build_runner(run_batch: Callable, settings: ServingSettings, runners: int = 1):
    if settings.batching:
        return MicroBatcher(
            run_batch,
            settings.max_batch_size,
            settings.max_batch_tokens,
            settings.max_batch_delay_ms / 1000,
            runners=runners,
        )
    return DirectRunner(run_batch, settings.max_batch_size, settings.max_batch_tokens, runners)


def create_app(
    env: ServingEnvironment | None = None,
    settings: ServingSettings | None = None,
    load: Callable[[], Inference] | None = None,
    group: WorkerGroup | None = None,
    exit_on_failure: bool = False,
    start: bool = True,
) -> Flask:
    """Build the app and start loading the model in the background.

    Everything not given comes from the environment. `group` is the set of workers that must all be ready before
    /ping says 200 (None: this process alone); `exit_on_failure` ends the process when the model cannot load.
    Tests pass `load` (a fake predictor) and get an app for test_client().
    """
    env = env or serving_environment()
    settings = settings or load_settings()
    codecs.check_default_accept(env.default_accept)
    group = group or WorkerGroup()
    loader = ModelLoader(load or (lambda: load_model(env, settings)), group, exit_on_failure)
    state = ServerState(env, settings, loader, group)

    app = Flask(__name__)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False  # OPTIONS gets the JSON 405, not Flask's empty HTML answer
    app.extensions[EXTENSION] = state
    register_error_handlers(app)
    _register_logging(app, state)
    _register_routes(app, state)
    if start:
        loader.start()
    return app


def gunicorn_app() -> Flask:
    """What each gunicorn worker serves: the app of one worker of the group its master created, which stops the
    server when its model cannot load (a dead container is a clearer signal to SageMaker than /ping stuck at 503)."""
    return create_app(group=WorkerGroup.join(Path(os.environ[RUN_DIR_ENV])), exit_on_failure=True)


def _inference(state: ServerState) -> Inference | HookedInference:
    if not state.loader.ready:
        _, why = state.loader.health()
        raise NotReady(why)
    return state.loader.inference


def _refusal(env: ServingEnvironment, size: int | None = None) -> PayloadTooLarge:
    what = f"{size} bytes, over" if size is not None else "over"
    return PayloadTooLarge(
        f"The request body is {what} the {env.max_payload_mb} MB limit (SAGEMAKER_MAX_PAYLOAD_IN_MB)."
    )


def _refuse_oversized(env: ServingEnvironment) -> None:
    if request.content_length is not None and request.content_length > env.max_payload_bytes:
        raise _refusal(env, request.content_length)


def _read_body(env: ServingEnvironment) -> bytes:
    """The body, read at most up to the limit: a chunked body (no Content-Length) is cut off there with 413."""
    limit = env.max_payload_bytes
    chunks, total = [], 0
    while True:
        chunk = request.stream.read(min(1 << 16, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        chunks.append(chunk)
        if total > limit:
            raise _refusal(env)


def _discard_rest(stream, cap: int) -> None:
    """Read and drop what the client still sends, up to `cap` bytes, after the 413 went out: most HTTP clients
    (requests, the AWS SDKs) read no answer before their body is sent, and would see a reset instead of 413."""
    try:
        while cap > 0:
            chunk = stream.read(min(1 << 16, cap))
            if not chunk:
                return
            cap -= len(chunk)
    except (OSError, ValueError):
        pass


def _register_routes(app: Flask, state: ServerState) -> None:
    env = state.env

    @app.errorhandler(PayloadTooLarge)
    def _too_large(exc: PayloadTooLarge):
        response = json_error(STATUS[PayloadTooLarge], exc.message)
        stream = request.environ.get("wsgi.input")
        if stream is not None:  # runs once the answer is written, so the refusal comes before any reading
            response.call_on_close(lambda: _discard_rest(stream, DISCARD_CAP_FACTOR * env.max_payload_bytes))
        return response

    @app.after_request
    def _fail_the_transform(response: Response) -> Response:
        if env.batch_transform and request.path == "/invocations" and response.status_code != 200:
            return cut_off(response, request.environ, g.get("request_id", "-"))
        return response

    @app.get("/ping")
    def ping():
        healthy, why = state.loader.health()
        if not healthy:
            raise NotReady(why)
        return Response('{"status": "ready"}', mimetype="application/json")

    @app.post("/invocations")
    def invocations():
        inference = _inference(state)
        _refuse_oversized(env)  # by Content-Length, before a byte of the body is read
        if isinstance(inference, HookedInference):  # the script reads any content type, writes any answer
            headers = request.headers
            answer, media = inference.invoke(
                _read_body(env), headers.get("Content-Type"), headers.get("Accept"), g.request_id, g.started
            )
            return Response(answer, content_type=media)
        content_type = codecs.check_content_type(request.headers.get("Content-Type"))
        accept = codecs.choose_accept(request.headers.get("Accept"), content_type, env.default_accept)
        body = _read_body(env)
        decoded = codecs.decode(body, request.headers.get("Content-Type"), inference.text_pair)
        results, largest = inference.classify(decoded, g.started)
        g.texts = len(decoded.inputs)
        response = Response(codecs.encode(results, accept, decoded.single), mimetype=accept)
        response.headers["X-Textclf-Batch-Size"] = str(largest)
        if len(decoded.inputs) >= LARGE_REQUEST_TEXTS:  # once the answer is sent and the request's objects freed
            response.call_on_close(return_memory)
        return response

    @app.get("/execution-parameters")
    def execution_parameters():
        # Batch transform asks once before sending records. Two payloads per worker keep every batcher fed
        # while the next one is in transit, unless the job fixed its own concurrency.
        concurrency = env.max_concurrent_transforms or TRANSFORMS_PER_WORKER * max(1, state.group.expected)
        limits = state.loader.inference.limits if state.loader.ready else None
        body = {
            "MaxConcurrentTransforms": concurrency,
            "BatchStrategy": env.batch_strategy,
            "MaxPayloadInMB": advertised_payload_mb(env, limits),
        }
        return Response(json.dumps(body), mimetype="application/json")

    @app.get("/stats")
    def stats():
        runner = state.loader.inference.runner if state.loader.ready else None
        body = {
            "pid": os.getpid(),
            "state": state.loader.state.value,
            "batching": state.settings.batching,
            **(runner.stats.snapshot() if runner is not None else {}),
        }
        return Response(json.dumps(body), mimetype="application/json")


def _register_logging(app: Flask, state: ServerState) -> None:
    @app.before_request
    def _start():
        g.started = time.perf_counter()
        g.request_id = next((request.headers[h] for h in REQUEST_ID_HEADERS if request.headers.get(h)), None)
        g.request_id = (g.request_id or uuid.uuid4().hex[:16])[:64]

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        if CUSTOM_ATTRIBUTES in request.headers:
            # Accepted and answered, as SageMaker passes it through to the caller.
            response.headers[CUSTOM_ATTRIBUTES] = request.headers[CUSTOM_ATTRIBUTES]
        level = logging.DEBUG if request.path == "/ping" else logging.INFO
        if log.isEnabledFor(level):
            elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
            texts = g.get("texts")
            log.log(
                level,
                "request %s %s %s %d %.1f ms%s",
                g.get("request_id", "-"),
                request.method,
                request.path,
                response.status_code,
                elapsed,
                f" texts={texts}" if texts else "",
            )
        return response

"""Every failure becomes a status and a JSON body `{"error": "<what was wrong>", "code": <status>}`.

Never a traceback or an HTML page, including Flask's own 404/405: SageMaker hands the status and the body to the
caller inside its ModelError, so the body is the only thing a client will read. STATUS is the one place where a
kind of error gets its status.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from .errors import (
    HookFailed,
    InferenceTimeout,
    InvalidInput,
    MalformedBody,
    NotAcceptable,
    NotReady,
    PayloadTooLarge,
    RequestError,
    UnsupportedContentType,
    error_body,
)

log = logging.getLogger("textclf.serving")

STATUS: dict[type[RequestError], int] = {
    MalformedBody: 400,
    NotAcceptable: 406,
    PayloadTooLarge: 413,
    UnsupportedContentType: 415,
    InvalidInput: 422,
    NotReady: 503,
    InferenceTimeout: 503,
    HookFailed: 500,
}


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(status, message), status=status, mimetype="application/json", headers=headers)


def _http_message(exc: HTTPException) -> str:
    if exc.code == 404:
        return f"No route {request.path}; this server answers /ping, /invocations and /execution-parameters."
    if exc.code == 405:
        return f"{request.method} is not allowed on {request.path}."
    return exc.description or exc.name


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RequestError)
    def _request_error(exc: RequestError):
        return json_error(STATUS[type(exc)], exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # Flask's own refusals (unknown route, wrong method), kept JSON.
        headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        return json_error(exc.code or 500, _http_message(exc), headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # A fault of ours: the traceback goes to the log, the caller gets the request id to quote.
        request_id = getattr(g, "request_id", "-")
        log.exception("request %s failed", request_id)
        return json_error(500, f"Internal error while handling request {request_id}; see the server log.")

"""Every failure becomes a status and a JSON body `{"error": "<what was wrong>", "code": <status>}` (CONTRACT B4).

Never a traceback or an HTML page, including Flask's own 404/405/413: SageMaker hands the status and the body to
the caller inside its ModelError, so the body is the only thing a client will read.
"""

from __future__ import annotations

import json
import logging

from werkzeug.exceptions import HTTPException

log = logging.getLogger("textclf.serving")


class ServingError(Exception):
    """A request that cannot be answered; `status` says why in HTTP terms."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServingError):
    status = 400  # the body cannot be parsed: malformed JSON or CSV, bytes that are not text


class NotAcceptable(ServingError):
    status = 406  # no format in Accept that we can write


class PayloadTooLarge(ServingError):
    status = 413  # over SAGEMAKER_MAX_PAYLOAD_IN_MB


class UnsupportedMediaType(ServingError):
    status = 415  # a Content-Type we cannot read


class Unprocessable(ServingError):
    status = 422  # well-formed, but the wrong shape or values (no inputs, bad parameters, a text too long)


class NotReady(ServingError):
    status = 503  # the model is still loading, failed to load, or inference did not finish in time


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": message, "code": status}).encode()


def json_error(status: int, message: str, headers: dict[str, str] | None = None):
    from flask import Response

    return Response(error_body(status, message), status=status, mimetype="application/json", headers=headers)


def _http_message(exc: HTTPException) -> str:
    from flask import request

    if exc.code == 404:
        return f"No route {request.path}; this server answers /ping, /invocations and /execution-parameters."
    if exc.code == 405:
        return f"{request.method} is not allowed on {request.path}."
    return exc.description or exc.name


def register_error_handlers(app) -> None:
    @app.errorhandler(ServingError)
    def _serving_error(exc: ServingError):
        return json_error(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # Flask's own refusals (unknown route, wrong method, MAX_CONTENT_LENGTH), kept JSON.
        headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        return json_error(exc.code or 500, _http_message(exc), headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        from flask import g

        # A fault of ours: the traceback goes to the log, the caller gets the request id to quote.
        request_id = getattr(g, "request_id", "-")
        log.exception("request %s failed", request_id)
        return json_error(500, f"Internal error while handling request {request_id}; see the server log.")

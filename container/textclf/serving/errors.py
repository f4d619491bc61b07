"""What can go wrong with a request, in the server's own terms. Standard library only.

The codecs, the predictor and the batcher raise these; none of them knows HTTP. The HTTP layer maps each kind to
a status in one table (textclf.serving.http_errors), so a status is decided in exactly one place.
"""

from __future__ import annotations

import json


def error_body(status: int, message: str) -> bytes:
    """The one shape of every error answer, whoever sends it (the app, gunicorn, nginx):
    `{"error": "<what was wrong>", "code": <status>}`."""
    return json.dumps({"error": message, "code": status}).encode()


class RequestError(Exception):
    """A request that cannot be answered; `message` says why, for the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedBody(RequestError):
    """The body cannot be parsed: malformed JSON or CSV, bytes that are not text."""


class UnsupportedContentType(RequestError):
    """A Content-Type (or charset) the server cannot read."""


class NotAcceptable(RequestError):
    """No format in Accept that the server can write."""


class PayloadTooLarge(RequestError):
    """A body over SAGEMAKER_MAX_PAYLOAD_IN_MB."""


class InvalidInput(RequestError):
    """Well-formed, but the wrong shape or values: no inputs, bad parameters, a text too long."""


class NotReady(RequestError):
    """The model is still loading, failed to load, or the server is shutting down."""


class InferenceTimeout(RequestError):
    """Inference did not finish within SAGEMAKER_MODEL_SERVER_TIMEOUT."""


class HookFailed(RequestError):
    """A function of the team's inference script (or a built-in one it was chained with) raised: a 500 that names
    the function; the traceback goes to the log only."""

    def __init__(self, hook: str, message: str) -> None:
        super().__init__(message)
        self.hook = hook

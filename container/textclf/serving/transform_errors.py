"""Batch transform: a request that fails must fail the job, never become a line of its output.

SageMaker fails a transform job when /invocations answers anything but 200. The SageMaker Python SDK's local mode
does not look at the status: it appends whatever body comes back to the output file and reports success. So in a
batch transform an error answer keeps its status and JSON message but is cut off before its end (chunked, with no
final chunk): a client that reads the status sees the error, and one that only reads bodies gets an incomplete
response and fails instead of saving the message as a prediction.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

from flask import Response

log = logging.getLogger("textclf.serving")


def cut_off(response: Response, environ: dict, request_id: str) -> Response:
    """The same status, headers and body, streamed, then the connection shut before the response is complete."""
    body = response.get_data()
    log.warning(
        "request %s failed in a batch transform (%d %s); the connection is cut so that the job fails instead of "
        "writing this error as a prediction",
        request_id,
        response.status_code,
        body.decode(errors="replace")[:500],
    )
    connection = environ.get("gunicorn.socket")

    def chunks() -> Iterator[bytes]:
        yield body
        if connection is None:  # another WSGI server: an error after the headers makes it abort the response
            raise ConnectionAbortedError("batch transform request failed")
        try:
            connection.shutdown(socket.SHUT_WR)  # gunicorn's closing chunk then finds the connection closed
        except OSError:
            pass  # the client is gone already

    headers = [(name, value) for name, value in response.headers if name.lower() != "content-length"]
    headers.append(("X-Accel-Buffering", "no"))  # nginx passes it on as it comes, so the cut reaches the client
    cut = Response(chunks(), status=response.status_code, headers=headers)
    cut.call_on_close(response.close)
    return cut

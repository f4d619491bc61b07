"""Clients that connect and stall, for the tests of serve's front (tests/serving) and of the image (tests/container)."""

from __future__ import annotations

import socket

# Three ways to stall, as a slowloris attack or a broken client does: connect and send nothing; send half the
# headers; send the headers with a Content-Length and only part of the body.
STALLS = (
    b"",
    b"POST /invocations HTTP/1.1\r\nHost: textclf\r\nContent-Ty",
    b"POST /invocations HTTP/1.1\r\nHost: textclf\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    + b'{"inputs": ["'
    + b"rain " * 200,
)


def open_stalled_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections to 127.0.0.1:`port`, each stalled in one of the three ways in turn, left open."""
    stalled = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if STALLS[i % len(STALLS)]:
            sock.sendall(STALLS[i % len(STALLS)])
        stalled.append(sock)
    return stalled


def still_open(sock: socket.socket) -> bool:
    """True while the server has neither answered nor closed this connection."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # returns an answer's first byte, or b"" once closed
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False

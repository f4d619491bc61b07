"""The front proxy: nginx on SageMaker's port, in front of gunicorn on a unix socket.

nginx holds every client connection in one event loop and passes a request to gunicorn only once its headers and
whole body have arrived; it also reads gunicorn's answer at once and writes it out at the client's pace. A client
that connects and stalls (or trickles its request) therefore costs a few kilobytes of nginx memory instead of
one of gunicorn's request threads, and /ping keeps answering however many such clients there are.

This module finds nginx, computes its limits from the SageMaker settings (the one place that does), and writes
its configuration; serving/supervisor.py runs it. Standard library only.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..contract import ServingEnvironment
from ..errors import UserError
from .errors import error_body
from .settings import GRACEFUL_TIMEOUT_S, KEEPALIVE_S

# Longest silence allowed from a client in the middle of a request: while its headers arrive, between two reads
# of its body, between two writes of the answer. A live client never pauses this long (SageMaker's front end sends
# whole requests at once); a stalled one is dropped after it, and cannot hold up a SIGTERM drain any longer either.
CLIENT_TIMEOUT_S = 20
# nginx waits this much longer for an answer than the app's own limit on inference (SAGEMAKER_MODEL_SERVER_TIMEOUT),
# so that the app's JSON 503 (or gunicorn replacing a stuck worker) comes first and nginx's 504 is the last resort.
PROXY_TIMEOUT_MARGIN_S = 5
# Request line and each header at most this size, all headers together at most HEADER_BUFFERS times it. gunicorn
# behind is configured to accept more (gunicorn_conf.py), so these are the limits a client meets.
HEADER_BUFFER_KB = 8
HEADER_BUFFERS = 4
# Bodies up to this size stay in memory; larger ones (batch transform payloads) are buffered to a file in the run
# directory until complete, then passed on.
BODY_BUFFER_KB = 128
# Connections one nginx worker holds at most (clients and the connections to gunicorn both count), capped by the
# open-file limit. One worker: nginx only moves bytes here, the model is the bottleneck, and one event loop holds
# thousands of connections.
MAX_WORKER_CONNECTIONS = 4096
LISTEN_BACKLOG = 2048

# The URI prefix of nginx's own error answers (internal: a client asking for it gets the JSON 404).
ERROR_PREFIX = "/.textclf/error/"
# nginx's name for a header over its buffers; answered as 431, the standard status for it.
NGINX_HEADER_TOO_LARGE = 494
NGINX_LOG_LEVELS = {"DEBUG": "info", "INFO": "notice", "WARNING": "warn", "ERROR": "error", "CRITICAL": "crit"}
# Temp-file directories nginx creates at start for the modules compiled in; all must point into the run directory
# (the built-in defaults under /var/lib/nginx are neither writable by other uids nor on a read-only root).
TEMP_PATHS = {"client_body": None, "proxy": None, "fastcgi": "http_fastcgi", "uwsgi": "http_uwsgi", "scgi": "http_scgi"}
INSTALL_HINT = (
    "Install it (Debian/Ubuntu: apt-get install -y nginx-light, or nginx-core / nginx where that is missing), "
    "or put the directory holding nginx on PATH."
)


@dataclass(frozen=True)
class FrontLimits:
    port: int
    max_body_mb: int
    proxy_timeout_s: int
    client_timeout_s: int = CLIENT_TIMEOUT_S
    keepalive_s: int = KEEPALIVE_S
    shutdown_timeout_s: int = GRACEFUL_TIMEOUT_S
    header_buffer_kb: int = HEADER_BUFFER_KB
    header_buffers: int = HEADER_BUFFERS
    body_buffer_kb: int = BODY_BUFFER_KB


def front_limits(env: ServingEnvironment) -> FrontLimits:
    return FrontLimits(
        port=env.port,
        max_body_mb=env.max_payload_mb,
        proxy_timeout_s=env.timeout_seconds + PROXY_TIMEOUT_MARGIN_S,
    )


def error_messages(limits: FrontLimits) -> dict[int, str]:
    """What nginx answers itself, by status: what was wrong, then what to do."""
    header_kb, total_kb = limits.header_buffer_kb, limits.header_buffer_kb * limits.header_buffers
    return {
        400: "The request is not valid HTTP/1.1 (malformed request line, header or chunked body). "
        "Send a well-formed request.",
        404: "No such route; this server answers /ping, /invocations and /execution-parameters.",
        405: "This method is not allowed. Use GET for /ping and /execution-parameters, POST for /invocations.",
        408: f"The request did not arrive in time: the client sent nothing for {limits.client_timeout_s} s. "
        "Send the whole request without pauses.",
        411: "The request has a body but no Content-Length. Send a Content-Length or a chunked body.",
        413: f"The request body is over the {limits.max_body_mb} MB limit (SAGEMAKER_MAX_PAYLOAD_IN_MB). "
        "Send fewer texts per request, or raise the limit.",
        414: f"The request line is over {header_kb} KB. Send the input in the body of a POST to /invocations.",
        431: f"A request header is over {header_kb} KB, or all of them together over {total_kb} KB. "
        "Send shorter headers.",
        500: "The front proxy failed to handle the request; the server log has the cause. Retry the request.",
        501: "The request's Transfer-Encoding is not supported. Send the body with a Content-Length or chunked.",
        502: "The model server closed the connection without answering (a worker restarting or crashing). "
        "Retry the request; the server log has the cause.",
        504: f"The model server did not answer within {limits.proxy_timeout_s} s "
        "(SAGEMAKER_MODEL_SERVER_TIMEOUT and a margin). Send fewer texts per request, or raise the timeout.",
        505: "Only HTTP/1.0 and HTTP/1.1 are served. Send an HTTP/1.1 request.",
    }


# --- the nginx binary --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NginxBuild:
    path: str
    version: tuple[int, ...]
    configure: str  # `nginx -V`: the configure arguments, which say which modules are left out

    def has(self, module: str) -> bool:
        return f"--without-{module}_module" not in self.configure

    @property
    def takes_error_log_option(self) -> bool:  # `-e`, for the log nginx writes before it reads its configuration
        return self.version >= (1, 19, 5)


def find_nginx(environ: dict[str, str] | None = None) -> NginxBuild:
    environ = os.environ if environ is None else environ
    path = shutil.which("nginx", path=environ.get("PATH", os.defpath))
    if path is None:
        raise UserError(
            "nginx is not installed (no `nginx` on PATH); it is the HTTP front of the server.", INSTALL_HINT
        )
    try:
        probe = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise UserError(f"{path} cannot be run ({exc}).", INSTALL_HINT) from None
    found = re.search(r"nginx/(\d+(?:\.\d+)*)", probe.stderr)
    if probe.returncode != 0 or found is None:
        raise UserError(f"{path} -V failed: {probe.stderr.strip()[-300:]!r}.", INSTALL_HINT)
    return NginxBuild(path, tuple(int(part) for part in found.group(1).split(".")), probe.stderr)


def worker_connections() -> int:
    """Raise this process's open-file limit to its ceiling (nginx and gunicorn inherit it) and fit nginx in it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(256, min(MAX_WORKER_CONNECTIONS, soft - 64))


def nginx_command(build: NginxBuild, config: Path) -> list[str]:
    command = [build.path, "-p", str(config.parent), "-c", str(config)]
    return [*command, "-e", "stderr"] if build.takes_error_log_option else command


# --- the configuration -------------------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    """A single-quoted nginx string holding `text` literally (a `$` would start a variable)."""
    if "$" in text:
        raise ValueError(f"no $ in nginx literals: {text!r}")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _error_pages(limits: FrontLimits) -> str:
    lines = []
    for status, message in error_messages(limits).items():
        raised = f"{NGINX_HEADER_TOO_LARGE} =431" if status == 431 else str(status)
        body = error_body(status, message).decode() + "\n"
        lines += [
            f"error_page {raised} {ERROR_PREFIX}{status};",
            f"location = {ERROR_PREFIX}{status} {{",
            "    internal;",
            "    default_type application/json;",
            f"    return {status} {_quoted(body)};",
            "}",
        ]
    return "\n".join("        " + line for line in lines)


def render_config(
    limits: FrontLimits,
    run_dir: Path,
    upstream_socket: Path,
    build: NginxBuild,
    log_level: str = "INFO",
    connections: int = 1024,
) -> str:
    temp_paths = "\n".join(
        f"    {name}_temp_path {run_dir / name};"
        for name, module in TEMP_PATHS.items()
        if module is None or build.has(module)
    )
    # As root, nginx would switch its workers to `nobody`, who can reach neither the run directory nor the socket:
    # they run as the same user as gunicorn instead. Any other uid cannot switch, and must not be asked to.
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
    return f"""# Written by serve (textclf.serving.front) for this run only.
daemon off;
master_process on;
worker_processes 1;
{user}pid {run_dir / "nginx.pid"};
error_log stderr {NGINX_LOG_LEVELS.get(log_level, "notice")};
# SIGQUIT drains: stop accepting, finish the requests in flight; connections still open after this are closed.
worker_shutdown_timeout {limits.shutdown_timeout_s}s;

events {{
    worker_connections {connections};
}}

http {{
    access_log off;  # the app logs each request with its request id
    server_tokens off;
    default_type application/octet-stream;
{temp_paths}

    # Slow or stalled clients: timeouts on each silence, then the connection is reset and its memory freed.
    client_header_timeout {limits.client_timeout_s}s;
    client_body_timeout {limits.client_timeout_s}s;
    send_timeout {limits.client_timeout_s}s;
    reset_timedout_connection on;
    client_header_buffer_size 1k;
    large_client_header_buffers {limits.header_buffers} {limits.header_buffer_kb}k;
    # SAGEMAKER_MAX_PAYLOAD_IN_MB: refused from Content-Length before reading; a chunked body is cut at the limit.
    client_max_body_size {limits.max_body_mb}m;
    client_body_buffer_size {limits.body_buffer_kb}k;
    # Idle keep-alive outlasts a front-end proxy's 60 s, so the proxy is the side that closes; also announced in a
    # Keep-Alive header, for clients that read it.
    keepalive_timeout {limits.keepalive_s}s {limits.keepalive_s}s;
    keepalive_requests 1000;

    upstream model_server {{
        server unix:{upstream_socket};
    }}

    server {{
        listen 0.0.0.0:{limits.port} backlog={LISTEN_BACKLOG};

{_error_pages(limits)}

        location / {{
            proxy_pass http://model_server;
            proxy_request_buffering on;  # the whole body first: gunicorn's threads never wait on a client
            proxy_buffering on;  # the whole answer read at once, written out at the client's pace
            # HTTP/1.1 to gunicorn: a streamed answer is chunked, so an answer cut off on purpose (a failed request
            # in a batch transform, serving/transform_errors.py) reaches the client cut off too, not completed.
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 5s;
            proxy_send_timeout {limits.proxy_timeout_s}s;
            proxy_read_timeout {limits.proxy_timeout_s}s;
            proxy_next_upstream off;  # one upstream; an inference is never sent twice
        }}
    }}
}}
"""

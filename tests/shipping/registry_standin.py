"""A real OCI registry on 127.0.0.1 for the push tests: Debian's docker-registry (the CNCF distribution registry),
with htpasswd basic auth for user AWS and the password inside moto's ECR token, so a push succeeds only if the
tool logged in with the token as ECR hands it out. Docker allows plain HTTP to 127.0.0.0/8."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import bcrypt
import requests
from harness import free_port

ECR_USER = "AWS"
ECR_PASSWORD = "123456789012-auth-token"  # moto's token is base64("AWS:<account>-auth-token")


def push_tools_problem() -> str | None:
    """None when Docker answers and docker-registry is installed; otherwise why not."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20 s"
    if info.returncode != 0:
        return "no Docker Engine answers `docker info`"
    if shutil.which("docker-registry") is None:
        return "no docker-registry command (apt-get install -y docker-registry)"
    return None


class Registry:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.workdir = workdir
        self._process: subprocess.Popen | None = None

    def start(self) -> Registry:
        hashed = bcrypt.hashpw(ECR_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        (self.workdir / "htpasswd").write_text(f"{ECR_USER}:{hashed}\n")
        config = f"""version: 0.1
log: {{level: warn}}
storage: {{filesystem: {{rootdirectory: {self.workdir / "data"}}}}}
http: {{addr: "{self.host}"}}
auth: {{htpasswd: {{realm: textclf-test, path: {self.workdir / "htpasswd"}}}}}
"""
        (self.workdir / "config.yml").write_text(config)
        log = open(self.workdir / "registry.log", "w")  # noqa: SIM115 (kept open for the process's lifetime)
        self._process = subprocess.Popen(["docker-registry", "serve", str(self.workdir / "config.yml")],
                                         stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://{self.host}/v2/", timeout=1).status_code == 401:  # up, and asks for auth
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"docker-registry did not start:\n{(self.workdir / 'registry.log').read_text()}")

    def stop(self) -> None:
        if self._process:
            self._process.terminate()
            self._process.wait(timeout=10)

    def tags(self, repository: str) -> list[str]:
        answer = requests.get(f"http://{self.host}/v2/{repository}/tags/list", auth=(ECR_USER, ECR_PASSWORD), timeout=5)
        return sorted(answer.json().get("tags") or []) if answer.status_code == 200 else []

    def catalog(self) -> list[str]:
        answer = requests.get(f"http://{self.host}/v2/_catalog", auth=(ECR_USER, ECR_PASSWORD), timeout=5)
        return answer.json()["repositories"]


def docker(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited with {result.returncode}:\n{result.stderr[-2000:]}")
    return result


def build_tiny_image(context: Path, tag: str, labels: dict[str, str]) -> str:
    """A few bytes FROM scratch with the labels docker/build-image.sh writes (never the 6 GB image): its ID."""
    context.mkdir(parents=True, exist_ok=True)
    (context / "hello.txt").write_text(f"shipped by the textclf tests as {tag}\n")
    label_lines = "".join(f'LABEL "{key}"="{value}"\n' for key, value in labels.items())
    (context / "Dockerfile").write_text(f"FROM scratch\nCOPY hello.txt /\n{label_lines}")
    docker("build", "--quiet", "--tag", tag, str(context))
    return docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def docker_spy(directory: Path) -> tuple[Path, Path]:
    """A `docker` earlier on PATH that logs its arguments and runs the real one: proves what reaches argv.
    Returns (the bin directory to prepend to PATH, the log)."""
    real = shutil.which("docker")
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "docker-argv.log"
    spy = directory / "docker"
    spy.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    spy.chmod(0o755)
    return directory, log

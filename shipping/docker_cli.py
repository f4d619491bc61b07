"""The docker CLI calls a push needs. The registry password goes to `docker login` on stdin only, never in argv
(visible in `ps`) or in anything printed."""

from __future__ import annotations

import json
import shutil
import subprocess

from .errors import ShipError


def _docker(*args: str, stdin: str | None = None, timeout: float = 120, show_output: bool = False) -> str:
    """docker's stdout; with show_output, its stdout goes to the user's terminal instead (a push's progress)."""
    if shutil.which("docker") is None:
        raise ShipError("The docker command is not on PATH.", "Install Docker (docker.io or Docker Engine).")
    stdout = None if show_output else subprocess.PIPE
    result = subprocess.run(
        ["docker", *args], input=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout
    )
    if result.returncode != 0:
        detail = (result.stderr.strip() or (result.stdout or "").strip()).splitlines()[-3:]
        raise ShipError(f"`docker {args[0]}` failed: {' '.join(detail)}", _REMEDIES.get(args[0], "See the message."))
    return result.stdout


_REMEDIES = {
    "image": "Build the image first (make image), or name an image that `docker images` lists.",
    "login": "Check that the registry host is reachable and that the credentials allow ecr:GetAuthorizationToken.",
    "push": "Check the registry host; in a repository with immutable tags, a tag already pushed cannot be pushed "
    "again: bump the version in pyproject.toml and rebuild.",
}


def image_labels(image: str) -> dict[str, str]:
    """The image's labels; ShipError when the image does not exist locally."""
    inspected = json.loads(_docker("image", "inspect", "--format", "{{json .Config.Labels}}", image))
    return inspected or {}


def login(registry_host: str, username: str, password: str) -> None:
    _docker("login", "--username", username, "--password-stdin", registry_host, stdin=password)


def tag(image: str, target: str) -> None:
    _docker("tag", image, target)


def push(target: str) -> None:
    # Pushing a 6-8 GB image can take long on a slow uplink.
    _docker("push", target, timeout=3 * 3600, show_output=True)


def repo_digest(image: str, repository: str) -> str:
    """The sha256:... digest under which `repository` (host/name) stores `image`, known after a push."""
    digests = json.loads(_docker("image", "inspect", "--format", "{{json .RepoDigests}}", image)) or []
    for entry in digests:
        name, _, digest = entry.partition("@")
        if name == repository:
            return digest
    raise ShipError(f"docker reports no digest of {image} in {repository} after the push.", "Run the push again.")

"""push: the local image into an ECR repository (created if missing), tagged with its version and git revision,
and the URI pinned by digest that training jobs and models take."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from . import docker_cli
from .aws import CREATED_BY_TAG, Aws, aws_errors
from .errors import ShipError
from .waiting import say

REPO = Path(__file__).resolve().parents[1]
BASE_LABEL = "org.opencontainers.image.base.name"
VERSION_LABEL = "org.opencontainers.image.version"
REVISION_LABEL = "org.opencontainers.image.revision"


def public_base_image() -> str:
    """PUBLIC_BASE_IMAGE from docker/base-image.env, the one place that pins it."""
    for line in (REPO / "docker" / "base-image.env").read_text().splitlines():
        if line.startswith("PUBLIC_BASE_IMAGE="):
            return line.split("=", 1)[1].strip()
    raise ShipError("docker/base-image.env has no PUBLIC_BASE_IMAGE line.", "Restore it from git.")


@dataclass(frozen=True)
class PushOptions:
    image: str
    repository: str
    immutable_tags: bool = False
    registry_host: str | None = None  # where to log in and push; default: the registry ECR names
    allow_any_base: bool = False


def image_tags(labels: dict[str, str], image: str) -> list[str]:
    """The version (pyproject.toml) and the git revision the image was built from, as docker/build-image.sh
    recorded them in its labels: tags that name what is inside, whenever it was built."""
    version, revision = labels.get(VERSION_LABEL, ""), labels.get(REVISION_LABEL, "")
    if version in {"", "dev"} or revision in {"", "unknown"}:
        raise ShipError(
            f"{image} has no version or git revision label (version={version!r}, revision={revision!r}).",
            "Build it with docker/build-image.sh (make image), which records both.",
        )
    sha, _, dirty = revision.partition("-")
    return [version, f"git-{sha[:12]}" + (f"-{dirty}" if dirty else "")]


def check_base(labels: dict[str, str], options: PushOptions) -> None:
    """SageMaker's GPU instances need the CUDA base; the local test base (Debian + CPU-capable torch, no CUDA
    runtime libraries of its own) must never reach ECR by accident."""
    public = public_base_image()
    base = labels.get(BASE_LABEL)
    if base == public or options.allow_any_base:
        return
    raise ShipError(
        f"{options.image} was built on {base or 'an unknown base'} ({BASE_LABEL}), not on the public CUDA base "
        f"{public}.",
        f"Build it on the public base where it can be pulled: make image BASE_IMAGE={public} TAG=public, then "
        "make push TAG=public. To push this image anyway, pass --allow-any-base.",
    )


def ensure_repository(ecr, options: PushOptions) -> str:
    """The repository's URI; creates it (scan on push, tag immutability as asked) when it does not exist yet."""
    mutability = "IMMUTABLE" if options.immutable_tags else "MUTABLE"
    try:
        created = ecr.create_repository(
            repositoryName=options.repository,
            imageScanningConfiguration={"scanOnPush": True},
            imageTagMutability=mutability,
            tags=[CREATED_BY_TAG],
        )
        say(f"created ECR repository {options.repository} (scan on push, tags {mutability.lower()})")
        return created["repository"]["repositoryUri"]
    except ecr.exceptions.RepositoryAlreadyExistsException:
        found = ecr.describe_repositories(repositoryNames=[options.repository])["repositories"][0]
        say(f"ECR repository {options.repository} exists (tags {found['imageTagMutability'].lower()})")
        return found["repositoryUri"]


def registry_credentials(ecr, registry_id: str) -> tuple[str, str, str]:
    """(user, password, registry host) from ECR's authorization token: base64 of "AWS:<password>", valid 12 h."""
    data = ecr.get_authorization_token(registryIds=[registry_id])["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://").rstrip("/")
    return user, password, host


def push(aws: Aws, options: PushOptions) -> str:
    """Pushes and returns <repositoryUri>@sha256:<digest>."""
    labels = docker_cli.image_labels(options.image)
    check_base(labels, options)
    tags = image_tags(labels, options.image)
    ecr = aws.client("ecr")
    with aws_errors():
        repository_uri = ensure_repository(ecr, options)
        registry_id = repository_uri.split(".", 1)[0]
        user, password, ecr_host = registry_credentials(ecr, registry_id)
    host = options.registry_host or ecr_host
    docker_cli.login(host, user, password)
    say(f"logged in to {host}")
    target = f"{host}/{options.repository}"
    for tag in tags:
        docker_cli.tag(options.image, f"{target}:{tag}")
        say(f"pushing {target}:{tag}")
        docker_cli.push(f"{target}:{tag}")
    digest = docker_cli.repo_digest(options.image, target)
    return f"{repository_uri}@{digest}"

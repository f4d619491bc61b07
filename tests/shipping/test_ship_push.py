"""`python -m shipping push` into a real registry on loopback, with the repository and the login token from the
emulator: a tiny image goes up, comes back by digest, and is the same image."""

from __future__ import annotations

import os
import re

import pytest
from aws_standin import ACCOUNT, REGION, REPO, ship
from registry_standin import ECR_PASSWORD, build_tiny_image, docker, docker_spy

pytestmark = pytest.mark.container  # needs a Docker Engine (and docker-registry)

VERSION = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.MULTILINE).group(1)
REVISION = "0123456789abcdef0123456789abcdef01234567"
PUBLIC_BASE = next(
    line.split("=", 1)[1]
    for line in (REPO / "docker" / "base-image.env").read_text().splitlines()
    if line.startswith("PUBLIC_BASE_IMAGE=")
)
REPOSITORY = "textclf-test"


def labels(base: str, version: str = VERSION, revision: str = REVISION) -> dict[str, str]:
    return {"org.opencontainers.image.base.name": base, "org.opencontainers.image.version": version,
            "org.opencontainers.image.revision": revision}  # fmt: skip


@pytest.fixture
def images():
    """Builds tiny images; removes them, and every tag they got, afterwards."""
    built: list[str] = []

    def build(tmp_path, purpose: str, image_labels: dict[str, str]) -> tuple[str, str]:
        tag = f"textclf-shiptest-{purpose}:{os.getpid()}"
        image_id = build_tiny_image(tmp_path / purpose, tag, image_labels)
        built.append(image_id)
        return tag, image_id

    yield build
    for image_id in built:
        docker("image", "rm", "--force", image_id, check=False)


def push_env(aws, tmp_path) -> tuple[dict[str, str], os.PathLike]:
    """The user's environment with a docker that logs its argv, and a Docker config of this test's own."""
    spy_bin, argv_log = docker_spy(tmp_path / "spy")
    env = aws.env(tmp_path, PATH=f"{spy_bin}:{os.environ['PATH']}", DOCKER_CONFIG=str(tmp_path / "docker-config"))
    return env, argv_log


def test_push_logs_in_with_the_ecr_token_and_prints_the_uri_by_digest(aws, registry, images, tmp_path):
    image, image_id = images(tmp_path, "push", labels(PUBLIC_BASE))
    env, argv_log = push_env(aws, tmp_path)
    args = ["push", image, "--repository", REPOSITORY, "--registry-host", registry.host, "--immutable-tags"]
    result = ship(env, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    uri = re.search(r"^image: (\S+)$", result.stdout, re.MULTILINE).group(1)
    assert re.fullmatch(rf"{ACCOUNT}\.dkr\.ecr\.{REGION}\.amazonaws\.com/{REPOSITORY}@sha256:[0-9a-f]{{64}}", uri)
    digest = uri.split("@")[1]

    ecr = aws.client("ecr")
    [repository] = ecr.describe_repositories(repositoryNames=[REPOSITORY])["repositories"]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["imageTagMutability"] == "IMMUTABLE"
    tags = ecr.list_tags_for_resource(resourceArn=repository["repositoryArn"])["tags"]
    assert {"Key": "textclf:created-by", "Value": "sagemaker-text-classifier/shipping"} in tags
    assert registry.tags(REPOSITORY) == sorted([VERSION, f"git-{REVISION[:12]}"])

    # The password went to docker on stdin only: never in argv, never printed.
    argv = argv_log.read_text()
    assert f"login --username AWS --password-stdin {registry.host}" in argv
    assert ECR_PASSWORD not in argv and ECR_PASSWORD not in result.stdout + result.stderr

    # What the registry holds is the image built: pulled back by digest, after every local name of it is gone.
    docker("image", "rm", "--force", image_id)
    pulled = f"{registry.host}/{REPOSITORY}@{digest}"
    docker("--config", env["DOCKER_CONFIG"], "pull", pulled)
    assert docker("image", "inspect", "--format", "{{.Id}}", pulled).stdout.strip() == image_id
    container = f"textclf-shiptest-pulled-{os.getpid()}"
    try:
        docker("create", "--name", container, pulled, "none")
        docker("cp", f"{container}:/hello.txt", str(tmp_path / "hello.txt"))
    finally:
        docker("rm", "--force", container, check=False)
    assert (tmp_path / "hello.txt").read_text() == (tmp_path / "push" / "hello.txt").read_text()

    # The next command takes the pushed image by default.
    train = ship(env, "train", "--train", "s3://textclf-data/t/", "--output", "s3://textclf-data/o/", "--poll-seconds",
                 "0.05")  # fmt: skip
    assert train.returncode == 0, train.stderr
    [request] = aws.requests_for("SageMaker.CreateTrainingJob")
    assert request["AlgorithmSpecification"]["TrainingImage"] == uri


def test_push_again_finds_the_repository_and_gives_the_same_digest(aws, registry, images, tmp_path):
    image, _ = images(tmp_path, "again", labels(PUBLIC_BASE))
    env, _ = push_env(aws, tmp_path)
    env["TEXTCLF_ECR_REPOSITORY"] = REPOSITORY  # the repository's name from the environment
    args = ["push", image, "--registry-host", registry.host]
    first, second = ship(env, *args), ship(env, *args)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert f"created ECR repository {REPOSITORY}" in first.stdout
    assert f"ECR repository {REPOSITORY} exists" in second.stdout  # RepositoryAlreadyExistsException is fine
    assert first.stdout.splitlines()[-1] == second.stdout.splitlines()[-1]


def test_push_refuses_an_image_built_on_the_local_test_base(aws, registry, images, tmp_path):
    image, _ = images(tmp_path, "localbase", labels("textclf-base:local"))
    env, _ = push_env(aws, tmp_path)
    args = ["push", image, "--repository", REPOSITORY, "--registry-host", registry.host]
    refused = ship(env, *args)
    assert refused.returncode == 2
    assert f"was built on textclf-base:local (org.opencontainers.image.base.name), not on the public CUDA base " \
           f"{PUBLIC_BASE}" in refused.stderr  # fmt: skip
    assert f"make image BASE_IMAGE={PUBLIC_BASE} TAG=public" in refused.stderr
    assert registry.catalog() == []
    assert aws.client("ecr").describe_repositories()["repositories"] == []  # refused before anything was made

    allowed = ship(env, *args, "--allow-any-base")
    assert allowed.returncode == 0, allowed.stderr
    assert registry.tags(REPOSITORY) == sorted([VERSION, f"git-{REVISION[:12]}"])


def test_push_refuses_an_image_without_version_labels(aws, push_tools, images, tmp_path):
    image, _ = images(tmp_path, "unlabelled", labels(PUBLIC_BASE, version="dev", revision="unknown"))
    result = ship(aws.env(tmp_path), "push", image)
    assert result.returncode == 2
    assert "has no version or git revision label" in result.stderr and "docker/build-image.sh" in result.stderr

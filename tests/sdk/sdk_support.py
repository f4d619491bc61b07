"""The SageMaker Python SDK's local mode set up as the README tells a user to, plus what the tests need on top:
containers named after this test session, a loopback-only serving port, and readers for what the SDK wrote."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import boto3
from docker_support import docker
from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession
from sample_data import write_rows
from tiny_models import TINY_HYPERPARAMETERS

# Local mode never assumes this role, but the SDK's classes require one.
ROLE = "arn:aws:iam::111111111111:role/textclf-local-mode"
# docker-compose names its containers <project>_<host>_1: this names the project after the suite and the session.
COMPOSE_PROJECT = f"textclf-sdk-test-{os.getpid()}"
# The default bucket of the sessions that use the S3 stand-in.
S3_BUCKET = "textclf-sdk-test"
# Ten epochs, as local_test/tiny-model-hyperparameters.json: the tiny model's validation accuracy settles at 1.0
# (after 4-5 epochs it can still swing between 0.75 and 1.0). 32 tokens hold every sample text.
HYPERPARAMETERS = {**TINY_HYPERPARAMETERS, "epochs": "10", "max_length": "32", "logging_steps": "20"}
# The SDK reads its defaults from this file (SAGEMAKER_USER_CONFIG_OVERRIDE); here it only opts out of telemetry.
TELEMETRY_OPT_OUT = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def sdk_environment(config_file: Path) -> dict[str, str]:
    """Fake credentials and a region (local mode calls no AWS service, but boto3 wants them) and the config."""
    return {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config_file),
        "COMPOSE_PROJECT_NAME": COMPOSE_PROJECT,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",  # v2 warns that v3 exists, on every class
    }


class LoopbackPort(int):
    """A serving port that the SDK publishes on 127.0.0.1 only. The SDK writes the compose file's port mapping
    with %s ("<port>:8080": every interface) and its URLs with %d, so this int reads 127.0.0.1:<port> as text."""

    def __str__(self) -> str:
        return f"127.0.0.1:{int(self)}"


def local_session(container_root: Path, serving_port: int, s3_endpoint: str | None = None) -> LocalSession:
    """Local mode as the README sets it up; with `s3_endpoint`, S3 is the stand-in there, with a bucket of ours
    as the default one (so the SDK never asks STS for an account to name its own)."""
    if s3_endpoint:
        # The SDK reads S3's endpoint from the boto session it is given, and fails when given none.
        session = LocalSession(boto3.Session(), s3_endpoint_url=s3_endpoint, default_bucket=S3_BUCKET)
    else:
        session = LocalSession()
    session.config = {
        "local": {
            "local_code": True,
            "container_root": str(container_root),
            "serving_port": LoopbackPort(serving_port),
        }
    }
    return session


def make_estimator(image: str, session: LocalSession, output: Path, **hyperparameters: str) -> Estimator:
    return Estimator(
        image_uri=image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        hyperparameters={**HYPERPARAMETERS, **hyperparameters},
        output_path=file_uri(output),
        sagemaker_session=session,
    )


def _compose_containers(*flags: str) -> list[str]:
    label = f"label=com.docker.compose.project={COMPOSE_PROJECT}"
    return docker("ps", *flags, "--quiet", "--filter", label, check=False).stdout.split()


def stop_compose_containers() -> None:
    """SIGTERM to this session's running local-mode containers: `serve` drains and exits 0, so the SDK's thread
    that watches docker-compose ends quietly."""
    running = _compose_containers()
    if running:
        docker("stop", "--time", "30", *running, timeout=90, check=False)


def remove_compose_containers() -> None:
    """Local mode leaves its stopped containers behind: remove this session's."""
    ids = _compose_containers("--all")
    if ids:
        docker("rm", "--force", *ids, check=False)


def file_uri(path: Path) -> str:
    return f"file://{path}"


def write_channel(directory: Path, rows: list[dict]) -> str:
    write_rows(directory / "data.jsonl", rows, "jsonl")
    return file_uri(directory)


def local_path(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(uri.removeprefix("file://"))


def extract(archive: Path, target: Path) -> Path:
    """Unpack a model.tar.gz as SageMaker does for an endpoint, keeping each file's mode."""
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="tar")
    return target

"""The AWS stand-in: moto in server mode on 127.0.0.1, in this test process, reached by the tool (a subprocess)
through boto3's own AWS_ENDPOINT_URL with fake credentials.

What the tool asked for is read back as a user would see it (describe_* calls on moto), and where moto does not
keep a field as sent, from moto's request recorder (/moto-api/recorder/), which logs every request body.

moto completes every training and transform job and puts every endpoint in service the moment it is created, and
has no API to make one fail (its state manager covers other services, not SageMaker). For the failure paths the
test therefore scripts the lifecycle in moto's own backend objects: each describe call advances one step, and the
last step carries the FailureReason that SageMaker reports (`scripted_lifecycle`). Everything the tool sends still
goes over HTTP to the emulator; only the statuses it reads back are written by the test.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import requests
from moto.moto_api import recorder
from moto.sagemaker.models import sagemaker_backends
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # moto's account
REGION = "eu-west-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/textclf-test"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagemaker-text-classifier@sha256:{'ab' * 32}"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class AwsStandIn:
    def __init__(self, port: int, recording: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.recording = recording
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    def start(self) -> None:
        recorder._location = str(self.recording)  # moto reads its env setting at import: point it at a temp file
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every resource and every recorded request, and record from now on."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
        requests.post(f"{self.url}/moto-api/recorder/reset-recording", timeout=10).raise_for_status()
        requests.post(f"{self.url}/moto-api/recorder/start-recording", timeout=10).raise_for_status()

    def client(self, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.url, **_lower(FAKE_CREDENTIALS))

    def requests_for(self, target: str) -> list[dict]:
        """Bodies of the recorded JSON requests whose X-Amz-Target is `target`, e.g. SageMaker.CreateTrainingJob."""
        return [
            json.loads(entry["body"]) for entry in self.recorded("/") if entry["headers"].get("X-Amz-Target") == target
        ]

    def recorded(self, path_part: str) -> list[dict]:
        """Recorded requests whose URL contains `path_part` (REST calls such as sagemaker-runtime's), with their
        bodies decoded to text."""
        entries = [json.loads(line) for line in self.recording.read_text().splitlines()]
        for entry in entries:
            if entry["body_encoded"]:
                entry["body"] = base64.b64decode(entry["body"]).decode()
        return [entry for entry in entries if path_part in entry["url"]]

    def endpoint_answers(self, *bodies: str, content_type: str = "application/json") -> None:
        """What sagemaker-runtime's invoke_endpoint answers next (moto answers fixed data, queued here)."""
        results = [{"Body": body, "ContentType": content_type, "InvokedProductionVariant": "AllTraffic",
                    "CustomAttributes": ""} for body in bodies]  # fmt: skip
        payload = {"account_id": ACCOUNT, "region": REGION, "results": results}
        requests.post(f"{self.url}/moto-api/static/sagemaker/endpoint-results", json=payload, timeout=10)

    def env(self, tmp_path: Path, **extra: str) -> dict[str, str]:
        """The environment a user would have: fake credentials, a region, the role, and nothing from this machine's
        own AWS configuration."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update(FAKE_CREDENTIALS)
        env.update(
            AWS_ENDPOINT_URL=self.url,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            SAGEMAKER_ROLE_ARN=ROLE,
            TEXTCLF_SHIP_STATE=str(tmp_path / "state.json"),
        )
        env.update(extra)
        return {key: value for key, value in env.items() if value is not None}


def _lower(credentials: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": "testing"}


def ship(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m shipping ARGS...` from the repository root, as `make` runs it."""
    return subprocess.run(
        [sys.executable, "-m", "shipping", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def scripted_lifecycle(kind: str, steps: list[dict]) -> None:
    """From now on, each describe of a SageMaker `kind` ("training_job" or "endpoint") first applies the next of
    `steps` (attribute name -> value on moto's object, e.g. {"training_job_status": "Failed", "failure_reason":
    ...}) to the resource described: a job that runs, and ends as the steps say."""
    backend = sagemaker_backends[ACCOUNT][REGION]
    collection = {"training_job": backend.training_jobs, "endpoint": backend.endpoints}[kind]
    describe_name = f"describe_{kind}"
    original = getattr(backend, describe_name)
    remaining = list(steps)

    def describe(name: str):
        if remaining and name in collection:
            for attribute, value in remaining.pop(0).items():
                setattr(collection[name], attribute, value)
        return original(name)

    setattr(backend, describe_name, describe)  # moto's reset replaces the backend's attributes: no undo needed

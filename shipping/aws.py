"""The AWS side every command shares: a session with a region and credentials, the role, ECR image URIs, the tag
that marks what this tool created, and AWS errors turned into ShipErrors.

Endpoint, credentials and region come from boto3's own settings (AWS_ENDPOINT_URL, AWS_PROFILE,
AWS_ACCESS_KEY_ID, ...), so the same code talks to AWS or to an emulator on loopback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
import botocore.exceptions

from .errors import ShipError

ROLE_ENV = "SAGEMAKER_ROLE_ARN"
# Every resource this tool creates carries this tag; cleanup deletes nothing without it.
CREATED_BY_TAG = {"Key": "textclf:created-by", "Value": "sagemaker-text-classifier/shipping"}

_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
# <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]/<repository>[:tag|@sha256:digest]
_ECR_URI = re.compile(
    r"(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@\s]+)(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?"
)


@dataclass(frozen=True)
class Aws:
    """A boto3 session bound to one region, with credentials known to exist."""

    session: boto3.Session
    region: str

    def client(self, service: str):
        return self.session.client(service, region_name=self.region)


def connect(region: str | None = None) -> Aws:
    """A session for `region` (else AWS_REGION, AWS_DEFAULT_REGION, the profile's region), checked for
    credentials before anything is created."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        session = boto3.Session(region_name=region)
    except botocore.exceptions.ProfileNotFound as error:
        raise ShipError(f"AWS profile not found: {error}.", "Set AWS_PROFILE to a profile in ~/.aws/config.") from None
    if not session.region_name:
        raise ShipError("No AWS region is set.", "Pass --region, or set AWS_REGION (e.g. export AWS_REGION=us-east-1).")
    try:
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as error:  # e.g. an expired SSO session
        raise ShipError(
            f"AWS credentials could not be loaded: {error}", "Renew them (aws sso login) and retry."
        ) from None
    if credentials is None:
        raise ShipError(
            "No AWS credentials found (environment, ~/.aws/credentials, SSO, instance role).",
            "Set AWS_PROFILE (after `aws sso login` or `aws configure`), or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY.",
        )
    return Aws(session, session.region_name)


def role_arn(given: str | None) -> str:
    """The execution role SageMaker assumes to read S3 and pull the image: --role, else $SAGEMAKER_ROLE_ARN."""
    role = given or os.environ.get(ROLE_ENV)
    if not role:
        raise ShipError(
            "No SageMaker execution role given.",
            f"Pass --role arn:aws:iam::<account>:role/<name>, or set {ROLE_ENV}: a role SageMaker can assume "
            "(AmazonSageMakerFullAccess, or S3 read/write on your bucket and ECR pull).",
        )
    if not _ROLE_ARN.fullmatch(role):
        raise ShipError(f"Not an IAM role ARN: {role!r}.", "Give it as arn:aws:iam::123456789012:role/Name.")
    return role


def check_image_region(image_uri: str, region: str) -> None:
    """SageMaker pulls the image from ECR in the job's own region: refuse anything else before it costs a job."""
    match = _ECR_URI.fullmatch(image_uri)
    if not match:
        raise ShipError(
            f"Not an ECR image URI: {image_uri!r}.",
            "SageMaker pulls from ECR: push the image with `make push` and use the URI it prints "
            "(<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:...).",
        )
    image_region = match.group(2)
    if image_region != region:
        raise ShipError(
            f"The image is in ECR in {image_region}, but the job would run in {region}: SageMaker pulls images only "
            "from its own region.",
            f"Push the image to {region} (make push AWS_REGION={region}), or run the job in {image_region} "
            f"(--region {image_region}).",
        )


def s3_uri(value: str, what: str) -> str:
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", value):
        raise ShipError(f"{what} is not an S3 URI: {value!r}.", f"Give {what} as s3://bucket/prefix/.")
    return value


def tagged_as_ours(sagemaker, arn: str) -> bool:
    tags = sagemaker.list_tags(ResourceArn=arn).get("Tags", [])
    return CREATED_BY_TAG in tags


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turns boto3's exceptions into a cause and a remedy."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise ShipError("AWS refused: no credentials.", "Set AWS_PROFILE or AWS_ACCESS_KEY_ID.") from None
    except botocore.exceptions.EndpointConnectionError as error:
        raise ShipError(
            f"Cannot reach AWS: {error}.", "Check the network, the region, and AWS_ENDPOINT_URL if set."
        ) from None
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        code, message = details.get("Code", "Error"), details.get("Message", str(error))
        operation = error.operation_name
        if code in {"AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "ExpiredToken",
                    "ExpiredTokenException", "InvalidClientTokenId"}:  # fmt: skip
            remedy = f"Check the credentials in use and that they allow {operation}."
        else:
            remedy = "Fix the value the message names and run the command again."
        raise ShipError(f"AWS {operation} failed: {code}: {message}", remedy) from None
    except botocore.exceptions.BotoCoreError as error:  # credentials that expired mid-way, SSL, timeouts
        raise ShipError(f"AWS call failed: {error}", "Check the credentials (aws sso login) and the network.") from None

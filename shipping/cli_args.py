"""The command line: subcommands, flags, defaults and help texts (cli.py holds what each subcommand does)."""

from __future__ import annotations

import argparse
import os

from .aws import ROLE_ENV
from .state import STATE_ENV

REPOSITORY_ENV = "TEXTCLF_ECR_REPOSITORY"
ENDPOINT_ENV = "TEXTCLF_ENDPOINT_NAME"


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's region)")
    sub.add_argument("--state-file", help=f"what this tool created (default: ${STATE_ENV} or .shipping/state.json)")


def _sagemaker(sub: argparse.ArgumentParser, instance_type: str, *, count: bool = True) -> None:
    sub.add_argument("--image", help="ECR image URI (default: the last one `push` printed for this region)")
    sub.add_argument("--role", help=f"execution role ARN for SageMaker (default: ${ROLE_ENV})")
    sub.add_argument("--instance-type", default=instance_type, help=f"(default {instance_type})")
    if count:
        sub.add_argument("--instance-count", type=int, default=1, help="(default 1)")
    sub.add_argument("--poll-seconds", type=float, default=20, help="seconds between status checks (default 20)")


def _model_source(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model-data", help="s3://.../model.tar.gz that a training job wrote")
    sub.add_argument("--training-job", help="take model.tar.gz from this completed training job "
                     "(default: the last one `train` ran)")  # fmt: skip


def build_parser(push, train, deploy, transform, cleanup, default_image: str, default_repository: str):
    top = argparse.ArgumentParser(
        prog="python -m shipping",
        description="Ship the text-classifier image to ECR and run it on SageMaker (training, endpoint, batch).",
    )
    subs = top.add_subparsers(dest="command", required=True)

    sub = subs.add_parser("push", help="push the local image to ECR and print its URI pinned by digest")
    sub.add_argument("image", nargs="?", default=default_image, help=f"local image (default {default_image})")
    repository = os.environ.get(REPOSITORY_ENV) or default_repository
    sub.add_argument("--repository", default=repository, help=f"ECR repository (default ${REPOSITORY_ENV}, else "
                     f"{default_repository})")  # fmt: skip
    sub.add_argument("--immutable-tags", action="store_true", help="create the repository with immutable tags")
    sub.add_argument("--registry-host", help="log in and push to this host instead of the one ECR names (a VPC "
                     "endpoint or private DNS name for the same registry)")  # fmt: skip
    sub.add_argument("--allow-any-base", action="store_true",
                     help="push an image not built on the public CUDA base (PUBLIC_BASE_IMAGE)")  # fmt: skip
    _common(sub)
    sub.set_defaults(run=push)

    sub = subs.add_parser("train", help="run a training job and wait for it")
    sub.add_argument("--train", required=True, help="s3:// prefix of the training data (required)")
    sub.add_argument("--validation", help="s3:// prefix of validation data")
    sub.add_argument("--test", help="s3:// prefix of test data")
    sub.add_argument("--model-channel", help="s3:// prefix of a base model (save_pretrained files or model.tar.gz)")
    sub.add_argument("--output", required=True, help="s3:// prefix for model.tar.gz and the job's output")
    sub.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="a hyperparameter (repeatable)")
    sub.add_argument("--hyperparameters", metavar="FILE", help="a JSON object of hyperparameters (--hp wins)")
    sub.add_argument("--job-name", help="(default textclf-train-<time>)")
    sub.add_argument("--volume-gb", type=int, default=30, help="EBS volume size (default 30)")
    sub.add_argument("--max-runtime", type=int, default=24 * 3600, help="seconds (default 86400)")
    sub.add_argument("--spot", action="store_true", help="managed spot training (checkpoints make it resumable)")
    sub.add_argument("--max-wait", type=int, help="spot: seconds to wait for capacity plus run (default 2 x runtime)")
    sub.add_argument("--checkpoint-s3", help="s3:// prefix for checkpoints (default <output>/<job>/checkpoints/)")
    _sagemaker(sub, "ml.g5.xlarge")  # more than one instance: `train` trains data-parallel on all of them
    _common(sub)
    sub.set_defaults(run=train)

    sub = subs.add_parser("deploy", help="create a model, endpoint config and endpoint; wait; invoke it once")
    _model_source(sub)
    sub.add_argument("--name", default=os.environ.get(ENDPOINT_ENV), help="name of the model, endpoint config and "
                     f"endpoint (default ${ENDPOINT_ENV}, else textclf-<time>)")  # fmt: skip
    sub.add_argument("--serverless", action="store_true", help="a serverless endpoint instead of instances")
    sub.add_argument("--memory-mb", type=int, default=6144, help="serverless memory: 1024..6144 (default 6144)")
    sub.add_argument("--max-concurrency", type=int, default=5, help="serverless concurrent requests (default 5)")
    sub.add_argument("--smoke-text", action="append", help="text for the smoke invocation (repeatable)")
    _sagemaker(sub, "ml.g5.xlarge")
    _common(sub)
    sub.set_defaults(run=deploy)

    sub = subs.add_parser("transform", help="run a batch transform job over JSON Lines files and wait for it")
    sub.add_argument("--input", required=True, help="s3:// prefix of .jsonl files, one input per line")
    sub.add_argument("--output", required=True, help="s3:// prefix for the results")
    sub.add_argument("--model", help="an existing SageMaker model (default: the last one this tool created)")
    _model_source(sub)
    sub.add_argument("--job-name", help="(default textclf-transform-<time>)")
    sub.add_argument("--max-payload-mb", type=int, help="override; default: asked from the container")
    sub.add_argument("--batch-strategy", choices=["MultiRecord", "SingleRecord"], help="override; default: asked")
    sub.add_argument("--max-concurrent", type=int, help="MaxConcurrentTransforms override; default: asked")
    _sagemaker(sub, "ml.g5.xlarge")
    _common(sub)
    sub.set_defaults(run=transform)

    sub = subs.add_parser("cleanup", help="delete the endpoints, endpoint configs and models this tool created")
    sub.add_argument("name", nargs="*", help="only these (default: all recorded for the region)")
    _common(sub)
    sub.set_defaults(run=cleanup)
    return top

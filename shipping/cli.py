"""python -m shipping push|train|deploy|transform|cleanup: ship the image to ECR and drive SageMaker with boto3."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from . import cleanup, ecr, endpoint, training_job, transform
from .aws import Aws, aws_errors, check_image_region, connect, role_arn, s3_uri
from .cli_args import build_parser
from .errors import JobFailed, ShipError
from .state import State
from .waiting import say

DEFAULT_IMAGE = "sagemaker-text-classifier:latest"
DEFAULT_REPOSITORY = "sagemaker-text-classifier"
SMOKE_TEXTS = ["The striker scored a late goal.", "Rain and wind tomorrow."]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def image_for(args, aws: Aws, state: State) -> str:
    image = args.image or state.last("image", aws.region)
    if not image:
        raise ShipError(
            f"No image given and none pushed to {aws.region} yet.", "Run `make push` first, or pass --image."
        )
    check_image_region(image, aws.region)
    return image


def model_data_for(args, aws: Aws, state: State) -> str:
    """--model-data, else the model.tar.gz of --training-job or of the last training job this tool ran."""
    if args.model_data:
        return s3_uri(args.model_data, "--model-data")
    job = args.training_job or state.last("training_job", aws.region)
    if not job:
        raise ShipError("No model given.", "Pass --model-data s3://.../model.tar.gz or --training-job NAME.")
    with aws_errors():
        description = aws.client("sagemaker").describe_training_job(TrainingJobName=job)
    if description["TrainingJobStatus"] != "Completed":
        raise ShipError(
            f"Training job {job} is {description['TrainingJobStatus']}, so it has no model to deploy.",
            "Pass a completed job with --training-job, or --model-data.",
        )
    return description["ModelArtifacts"]["S3ModelArtifacts"]


def hyperparameters(args) -> dict[str, str]:
    values: dict = {}
    if args.hyperparameters:
        try:
            values.update(json.loads(Path(args.hyperparameters).read_text()))
        except (OSError, json.JSONDecodeError, TypeError, ValueError) as error:
            raise ShipError(
                f"--hyperparameters {args.hyperparameters}: not a readable JSON object ({error}).",
                'Give a file holding one JSON object, e.g. {"epochs": 3, "learning_rate": 2e-05}.',
            ) from None
    for item in args.hp:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ShipError(f"--hp {item!r} is not NAME=VALUE.", "Write it as --hp epochs=3.")
        values[key] = value
    return training_job.hyperparameter_strings(values)


def do_push(args, aws: Aws, state: State) -> None:
    options = ecr.PushOptions(args.image, args.repository, args.immutable_tags, args.registry_host, args.allow_any_base)
    uri = ecr.push(aws, options)
    state.set_last("image", uri, aws.region)
    say(f"image: {uri}")


def do_train(args, aws: Aws, state: State) -> None:
    given = {"train": args.train, "validation": args.validation, "test": args.test, "model": args.model_channel}
    flags = {"model": "--model-channel"}
    channels = {name: s3_uri(value, flags.get(name, f"--{name}")) for name, value in given.items() if value}
    options = training_job.TrainingOptions(
        job_name=args.job_name or unique_name("textclf-train"),
        image=image_for(args, aws, state),
        role=role_arn(args.role),
        channels=channels,
        output=s3_uri(args.output, "--output"),
        hyperparameters=hyperparameters(args),
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        volume_gb=args.volume_gb,
        max_runtime_seconds=args.max_runtime,
        spot=args.spot,
        max_wait_seconds=args.max_wait,
        checkpoint_s3=args.checkpoint_s3 and s3_uri(args.checkpoint_s3, "--checkpoint-s3"),
    )
    training_job.start(aws, options)
    state.set_last("training_job", options.job_name, aws.region)
    training_job.wait(aws, options.job_name, args.poll_seconds)


def do_deploy(args, aws: Aws, state: State) -> None:
    options = endpoint.EndpointOptions(
        name=args.name or unique_name("textclf"),
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        serverless=args.serverless,
        memory_mb=args.memory_mb,
        max_concurrency=args.max_concurrency,
    )
    endpoint.production_variant(options.name, options)  # refuse bad serverless settings before creating anything
    image, role = image_for(args, aws, state), role_arn(args.role)
    endpoint.create_model(aws, state, options.name, image, model_data_for(args, aws, state), role)
    endpoint.create_endpoint(aws, state, options.name, options)
    endpoint.wait(aws, options.name, args.poll_seconds)
    say(f"endpoint {options.name} is in service")
    answer = endpoint.smoke_invoke(aws, options.name, args.smoke_text or SMOKE_TEXTS)
    say(f"smoke invocation answered: {json.dumps(answer)}")


def do_transform(args, aws: Aws, state: State) -> None:
    job_name = args.job_name or unique_name("textclf-transform")
    if args.model_data or args.training_job:
        model_name = job_name
        endpoint.create_model(aws, state, model_name, image_for(args, aws, state), model_data_for(args, aws, state),
                              role_arn(args.role))  # fmt: skip
    else:
        model_name = args.model or state.last("model", aws.region)
        if not model_name:
            raise ShipError("No model for the transform.", "Pass --model NAME, or --model-data / --training-job.")
    options = transform.TransformOptions(
        job_name=job_name,
        model_name=model_name,
        input=s3_uri(args.input, "--input"),
        output=s3_uri(args.output, "--output"),
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        max_payload_mb=args.max_payload_mb,
        batch_strategy=args.batch_strategy,
        max_concurrent=args.max_concurrent,
    )
    output = transform.run(aws, options, args.poll_seconds)
    say(f"output: {output} (one <input file>.out per input file, one JSON line per input line)")


def do_cleanup(args, aws: Aws, state: State) -> None:
    cleanup.cleanup(aws, state, args.name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(do_push, do_train, do_deploy, do_transform, do_cleanup, DEFAULT_IMAGE, DEFAULT_REPOSITORY)
    args = parser.parse_args(argv)
    try:
        state = State(args.state_file)
        aws = connect(args.region)
        args.run(args, aws, state)
        return 0
    except ShipError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except JobFailed as error:
        print(f"failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopped waiting; what was started keeps running in SageMaker (see the AWS console)", file=sys.stderr)
        return 130

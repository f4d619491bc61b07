"""deploy: a SageMaker model (the image plus model.tar.gz), an endpoint config (real-time instances or
serverless), the endpoint; then a smoke invocation through sagemaker-runtime."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .aws import CREATED_BY_TAG, Aws, aws_errors
from .errors import JobFailed, ShipError
from .state import State
from .waiting import failure_reason, say, wait_until_final

VARIANT = "AllTraffic"
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)  # the sizes SageMaker offers


@dataclass(frozen=True)
class EndpointOptions:
    name: str  # used for the model, the endpoint config and the endpoint
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    serverless: bool = False
    memory_mb: int = 6144
    max_concurrency: int = 5


def create_model(aws: Aws, state: State, name: str, image: str, model_data: str, role: str) -> None:
    """A SageMaker model: the serving image and the model.tar.gz that `train` left (SageMaker unpacks it into
    /opt/ml/model). Recorded at once, so cleanup finds it even if a later step fails."""
    sagemaker = aws.client("sagemaker")
    with aws_errors():
        sagemaker.create_model(
            ModelName=name,
            PrimaryContainer={"Image": image, "ModelDataUrl": model_data},
            ExecutionRoleArn=role,
            Tags=[CREATED_BY_TAG],
        )
    state.record("model", name, aws.region)
    state.set_last("model", name, aws.region)
    say(f"created model {name} ({model_data})")


def production_variant(model_name: str, options: EndpointOptions) -> dict:
    if not options.serverless:
        return {
            "VariantName": VARIANT,
            "ModelName": model_name,
            "InstanceType": options.instance_type,
            "InitialInstanceCount": options.instance_count,
            "InitialVariantWeight": 1.0,
        }
    if options.memory_mb not in SERVERLESS_MEMORY_MB:
        raise ShipError(
            f"Serverless memory {options.memory_mb} MB is not a size SageMaker offers.",
            f"Pass --memory-mb as one of {', '.join(map(str, SERVERLESS_MEMORY_MB))}.",
        )
    return {
        "VariantName": VARIANT,
        "ModelName": model_name,
        "ServerlessConfig": {"MemorySizeInMB": options.memory_mb, "MaxConcurrency": options.max_concurrency},
    }


def create_endpoint(aws: Aws, state: State, model_name: str, options: EndpointOptions) -> None:
    variant = production_variant(model_name, options)
    sagemaker = aws.client("sagemaker")
    with aws_errors():
        sagemaker.create_endpoint_config(
            EndpointConfigName=options.name, ProductionVariants=[variant], Tags=[CREATED_BY_TAG]
        )
        state.record("endpoint-config", options.name, aws.region)
        sagemaker.create_endpoint(EndpointName=options.name, EndpointConfigName=options.name, Tags=[CREATED_BY_TAG])
        state.record("endpoint", options.name, aws.region)
    kind = "serverless" if options.serverless else f"{options.instance_count} x {options.instance_type}"
    say(f"creating endpoint {options.name} ({kind})")


def wait(aws: Aws, name: str, poll_seconds: float) -> None:
    sagemaker = aws.client("sagemaker")
    with aws_errors():
        final = wait_until_final(
            lambda: sagemaker.describe_endpoint(EndpointName=name),
            "EndpointStatus",
            {"InService", "Failed", "OutOfService"},
            lambda d: f"endpoint {d['EndpointStatus']}",
            poll_seconds,
        )
    if final["EndpointStatus"] != "InService":
        raise JobFailed(
            f"endpoint {name} is {final['EndpointStatus']}: {failure_reason(final)}\n"
            "  Its model, config and endpoint are recorded: `python -m shipping cleanup` deletes them."
        )


def smoke_invoke(aws: Aws, name: str, texts: list[str]) -> list:
    """One real request through sagemaker-runtime, as a client would send it; the answer must be one prediction
    per text."""
    runtime = aws.client("sagemaker-runtime")
    with aws_errors():
        response = runtime.invoke_endpoint(
            EndpointName=name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps({"inputs": texts}),
        )
    body = response["Body"].read().decode("utf-8", "replace")
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        answer = None
    if not (isinstance(answer, list) and len(answer) == len(texts) and all("label" in a for a in answer)):
        raise JobFailed(f"endpoint {name} answered the smoke request with {body[:500]!r}, not one label per text")
    return answer

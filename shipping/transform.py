"""transform: a batch transform job over JSON Lines files. Without overrides, MaxPayloadInMB, BatchStrategy and
MaxConcurrentTransforms stay unset so that SageMaker asks the container (GET /execution-parameters), which knows
its workers and limits."""

from __future__ import annotations

from dataclasses import dataclass

from .aws import CREATED_BY_TAG, Aws, aws_errors
from .errors import JobFailed
from .waiting import failure_reason, say, wait_until_final

JSON_LINES = "application/jsonlines"


@dataclass(frozen=True)
class TransformOptions:
    job_name: str
    model_name: str
    input: str  # S3 prefix of .jsonl files
    output: str  # S3 prefix; SageMaker writes <input file name>.out there
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    max_payload_mb: int | None = None
    batch_strategy: str | None = None  # MultiRecord | SingleRecord
    max_concurrent: int | None = None


def transform_request(options: TransformOptions) -> dict:
    request = {
        "TransformJobName": options.job_name,
        "ModelName": options.model_name,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": options.input}},
            "ContentType": JSON_LINES,
            "SplitType": "Line",  # one record per line, batched by SageMaker into requests of whole lines
        },
        "TransformOutput": {"S3OutputPath": options.output, "Accept": JSON_LINES, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": options.instance_type, "InstanceCount": options.instance_count},
        "Tags": [CREATED_BY_TAG],
    }
    overrides = {
        "MaxPayloadInMB": options.max_payload_mb,
        "BatchStrategy": options.batch_strategy,
        "MaxConcurrentTransforms": options.max_concurrent,
    }
    request.update({key: value for key, value in overrides.items() if value is not None})
    return request


def run(aws: Aws, options: TransformOptions, poll_seconds: float) -> str:
    """Starts the job, waits, and returns where the output is."""
    sagemaker = aws.client("sagemaker")
    with aws_errors():
        sagemaker.create_transform_job(**transform_request(options))
        say(f"started transform job {options.job_name} on model {options.model_name}")
        final = wait_until_final(
            lambda: sagemaker.describe_transform_job(TransformJobName=options.job_name),
            "TransformJobStatus",
            {"Completed", "Failed", "Stopped"},
            lambda d: f"transform {d['TransformJobStatus']}",
            poll_seconds,
        )
    if final["TransformJobStatus"] != "Completed":
        raise JobFailed(
            f"transform job {options.job_name} {final['TransformJobStatus'].lower()}: {failure_reason(final)}"
        )
    return final["TransformOutput"]["S3OutputPath"]

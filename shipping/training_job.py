"""train: a SageMaker training job for the pushed image, with the metric definitions `train`'s log lines match,
S3 channels, checkpoints synced to S3, optional managed spot; then a progress display until it ends."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .aws import CREATED_BY_TAG, Aws, aws_errors
from .errors import JobFailed, ShipError
from .waiting import failure_reason, say, wait_until_final

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CHANNELS = ("train", "validation", "test", "model")
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"  # where `train` writes and resumes checkpoints; SageMaker syncs it


def metric_definitions() -> list[dict[str, str]]:
    """The README's METRIC_DEFINITIONS block: the one place they are written, next to the lines they match."""
    text = README.read_text()
    try:
        block = text.split("<!-- METRIC_DEFINITIONS_START -->")[1].split("<!-- METRIC_DEFINITIONS_END -->")[0]
        return json.loads(block.split("```json")[1].split("```")[0])
    except (IndexError, json.JSONDecodeError) as error:
        raise ShipError(
            f"README.md's metric definitions block is unreadable ({error}).", "Restore it from git."
        ) from None


@dataclass(frozen=True)
class TrainingOptions:
    job_name: str
    image: str
    role: str
    channels: dict[str, str]  # channel name -> S3 prefix
    output: str  # S3 prefix for model.tar.gz and output data
    hyperparameters: dict[str, str] = field(default_factory=dict)
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1  # more than one: data-parallel over every GPU of every instance
    volume_gb: int = 30
    max_runtime_seconds: int = 24 * 3600
    spot: bool = False
    max_wait_seconds: int | None = None  # spot only: runtime plus time waiting for capacity
    checkpoint_s3: str | None = None  # default: <output>/<job name>/checkpoints/


def hyperparameter_strings(values: dict) -> dict[str, str]:
    """SageMaker passes hyperparameters as strings: keep strings as they are, JSON-encode the rest (3 -> "3",
    2e-05 -> "2e-05", true -> "true"), which `train` parses back."""
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}


def check_hyperparameters(values: dict[str, str]) -> None:
    """Runs `train`'s own parser (stdlib only) on them, so that a misspelt name or a bad value fails here, with the
    same message, instead of minutes into a paid job."""
    if str(REPO / "container") not in sys.path:
        sys.path.append(str(REPO / "container"))
    from textclf import contract
    from textclf.errors import UserError
    from textclf.training import hyperparameters

    ours = {
        key: value for key, value in values.items() if not key.startswith(contract.RESERVED_HYPERPARAMETER_PREFIXES)
    }
    try:
        hyperparameters.parse(ours)
    except UserError as error:
        raise ShipError(error.cause, error.remedy) from None


def training_request(options: TrainingOptions) -> dict:
    if "train" not in options.channels:
        raise ShipError("No train channel given.", "Pass --train s3://bucket/prefix/ (the training data).")
    check_hyperparameters(options.hyperparameters)
    stopping = {"MaxRuntimeInSeconds": options.max_runtime_seconds}
    if options.spot:
        max_wait = options.max_wait_seconds or 2 * options.max_runtime_seconds
        if max_wait < options.max_runtime_seconds:
            raise ShipError(
                f"--max-wait ({max_wait} s) is shorter than --max-runtime ({options.max_runtime_seconds} s).",
                "With spot, the wait includes the run: make --max-wait at least --max-runtime.",
            )
        stopping["MaxWaitTimeInSeconds"] = max_wait
    elif options.max_wait_seconds:
        raise ShipError("--max-wait applies to managed spot training only.", "Add --spot, or drop --max-wait.")
    output = options.output.rstrip("/")
    return {
        "TrainingJobName": options.job_name,
        "AlgorithmSpecification": {
            "TrainingImage": options.image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        "RoleArn": options.role,
        "InputDataConfig": [
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": options.channels[name],
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for name in CHANNELS
            if name in options.channels
        ],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {
            "InstanceType": options.instance_type,
            "InstanceCount": options.instance_count,
            "VolumeSizeInGB": options.volume_gb,
        },
        "StoppingCondition": stopping,
        "HyperParameters": options.hyperparameters,
        "EnableManagedSpotTraining": options.spot,
        "CheckpointConfig": {
            "S3Uri": options.checkpoint_s3 or f"{output}/{options.job_name}/checkpoints/",
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        },
        "Tags": [CREATED_BY_TAG],
    }


def progress_line(description: dict) -> str:
    line = f"{description['TrainingJobStatus']} / {description.get('SecondaryStatus', '-')}"
    transitions = description.get("SecondaryStatusTransitions") or []
    if transitions and transitions[-1].get("StatusMessage"):
        line += f": {transitions[-1]['StatusMessage']}"
    return line + metrics_text(description, " | ")


def metrics_text(description: dict, prefix: str) -> str:
    metrics = description.get("FinalMetricDataList") or []
    return prefix + ", ".join(f"{m['MetricName']}={m['Value']:g}" for m in metrics) if metrics else ""


def start(aws: Aws, options: TrainingOptions) -> None:
    sagemaker = aws.client("sagemaker")
    request = training_request(options)
    with aws_errors():
        sagemaker.create_training_job(**request)
    say(f"started training job {options.job_name} ({options.instance_type}{', spot' if options.spot else ''})")


def wait(aws: Aws, job_name: str, poll_seconds: float) -> dict:
    """Waits for the job; returns its description when it completed, raises JobFailed otherwise."""
    sagemaker = aws.client("sagemaker")
    with aws_errors():
        final = wait_until_final(
            lambda: sagemaker.describe_training_job(TrainingJobName=job_name),
            "TrainingJobStatus",
            {"Completed", "Failed", "Stopped"},
            progress_line,
            poll_seconds,
        )
    if final["TrainingJobStatus"] != "Completed":
        raise JobFailed(f"training job {job_name} {final['TrainingJobStatus'].lower()}: {failure_reason(final)}")
    say(f"model artifact: {final['ModelArtifacts']['S3ModelArtifacts']}")
    say("final metrics:" + (metrics_text(final, " ") or " none reported"))
    return final

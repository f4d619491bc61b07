"""cleanup: deletes the endpoints, endpoint configs and models this tool created, and only those: a resource is
deleted when the state file records it AND it still carries the tool's tag (a name reused by someone else since
is refused). Training and transform jobs are records in SageMaker that cannot be deleted; nothing else is touched."""

from __future__ import annotations

from botocore.exceptions import ClientError

from .aws import Aws, aws_errors, tagged_as_ours
from .errors import ShipError
from .state import Resource, State
from .waiting import say, warn

_DESCRIBE = {
    "endpoint": ("describe_endpoint", "EndpointName", "EndpointArn", "delete_endpoint"),
    "endpoint-config": (
        "describe_endpoint_config",
        "EndpointConfigName",
        "EndpointConfigArn",
        "delete_endpoint_config",
    ),
    "model": ("describe_model", "ModelName", "ModelArn", "delete_model"),
}


def select(state: State, region: str, names: list[str]) -> list[Resource]:
    """What to delete: everything recorded for the region, or the recorded resources with the given names
    (an endpoint name also selects its config and model, which the tool names alike)."""
    recorded = state.created(region)
    if not names:
        return recorded
    unknown = [name for name in names if not any(r.name == name for r in recorded)]
    if unknown:
        raise ShipError(
            f"Not created by this tool (no record in {state.path} for {region}): {', '.join(unknown)}.",
            "cleanup deletes only what it created; delete other resources yourself in the console or with the AWS CLI.",
        )
    return [r for r in recorded if r.name in names]


def delete(aws: Aws, state: State, resource: Resource) -> bool:
    """Deletes one resource; False when it was refused (not tagged as ours)."""
    describe, name_key, arn_key, delete_call = _DESCRIBE[resource.kind]
    sagemaker = aws.client("sagemaker")
    try:
        arn = getattr(sagemaker, describe)(**{name_key: resource.name})[arn_key]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationException":  # SageMaker's answer for "not found"
            say(f"{resource.kind} {resource.name} is already gone")
            state.forget(resource)
            return True
        raise
    if not tagged_as_ours(sagemaker, arn):
        warn(f"refused: {resource.kind} {resource.name} exists but lacks this tool's tag, so someone else made it")
        return False
    getattr(sagemaker, delete_call)(**{name_key: resource.name})
    state.forget(resource)
    say(f"deleted {resource.kind} {resource.name}")
    return True


def cleanup(aws: Aws, state: State, names: list[str]) -> None:
    chosen = select(state, aws.region, names)
    if not chosen:
        say(f"nothing to delete: {state.path} records no endpoint, endpoint config or model in {aws.region}")
        return
    with aws_errors():
        refused = [r for r in chosen if not delete(aws, state, r)]
    if refused:
        raise ShipError(
            f"Refused to delete {len(refused)} resource(s) that do not carry this tool's tag.",
            "Check who owns them; delete them yourself if they are yours.",
        )

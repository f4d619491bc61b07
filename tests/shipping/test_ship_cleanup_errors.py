"""The whole path through the state file (train, deploy, transform, cleanup), cleanup's refusals, and the errors
a user meets before anything is created."""

from __future__ import annotations

import json

import pytest
from aws_standin import IMAGE, ROLE, ship

TAG = {"Key": "textclf:created-by", "Value": "sagemaker-text-classifier/shipping"}
TRAIN = ["train", "--image", IMAGE, "--train", "s3://textclf-data/sample/train/", "--output", "s3://textclf-data/jobs/",
         "--job-name", "textclf-train-path", "--poll-seconds", "0.05"]  # fmt: skip
DEPLOY = ["deploy", "--image", IMAGE, "--name", "textclf-path", "--instance-type", "ml.g4dn.xlarge", "--poll-seconds",
          "0.05"]  # fmt: skip


def test_train_deploy_transform_cleanup_each_uses_what_the_previous_made(aws, tmp_path):
    env = aws.env(tmp_path)
    aws.endpoint_answers(json.dumps([{"label": "sport", "score": 0.9}, {"label": "weather", "score": 0.8}]))
    assert ship(env, *TRAIN).returncode == 0
    deployed = ship(env, *DEPLOY)  # no --model-data: the last training job's model.tar.gz
    assert deployed.returncode == 0, deployed.stderr
    transformed = ship(env, "transform", "--input", "s3://textclf-data/batch/in/", "--output",
                       "s3://textclf-data/batch/out/", "--poll-seconds", "0.05")  # fmt: skip
    assert transformed.returncode == 0, transformed.stderr
    sagemaker = aws.client("sagemaker")
    artifact = sagemaker.describe_training_job(TrainingJobName="textclf-train-path")["ModelArtifacts"]
    model = sagemaker.describe_model(ModelName="textclf-path")
    assert model["PrimaryContainer"]["ModelDataUrl"] == artifact["S3ModelArtifacts"]
    for arn in (model["ModelArn"], sagemaker.describe_endpoint(EndpointName="textclf-path")["EndpointArn"]):
        assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [TAG]
    [transform] = aws.requests_for("SageMaker.CreateTransformJob")
    assert transform["ModelName"] == "textclf-path"  # the model deploy made

    cleaned = ship(env, "cleanup")
    assert cleaned.returncode == 0, cleaned.stderr
    assert [line.split()[1] for line in cleaned.stdout.splitlines()] == ["endpoint", "endpoint-config", "model"]
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []
    assert "nothing to delete" in ship(env, "cleanup").stdout


def test_cleanup_refuses_a_name_it_did_not_create(aws, tmp_path):
    sagemaker = aws.client("sagemaker")
    sagemaker.create_model(ModelName="theirs", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    result = ship(aws.env(tmp_path), "cleanup", "theirs")
    assert result.returncode == 2
    assert "Not created by this tool" in result.stderr and "theirs" in result.stderr
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["theirs"]
    assert aws.requests_for("SageMaker.DeleteModel") == []


def test_cleanup_refuses_a_recorded_name_that_someone_else_now_holds(aws, tmp_path):
    env = aws.env(tmp_path)
    aws.endpoint_answers(json.dumps([{"label": "sport", "score": 0.9}]))
    assert (
        ship(env, *DEPLOY, "--model-data", "s3://textclf-data/m/model.tar.gz", "--smoke-text", "goal").returncode == 0
    )
    # Someone deletes the tool's endpoint and makes their own under the same name, on their own config.
    sagemaker = aws.client("sagemaker")
    sagemaker.delete_endpoint(EndpointName="textclf-path")
    sagemaker.create_endpoint_config(EndpointConfigName="theirs", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "textclf-path", "InstanceType": "ml.m5.xlarge",
         "InitialInstanceCount": 1}])  # fmt: skip
    sagemaker.create_endpoint(EndpointName="textclf-path", EndpointConfigName="theirs")

    result = ship(env, "cleanup")
    assert result.returncode == 2
    assert "refused: endpoint textclf-path exists but lacks this tool's tag" in result.stderr
    assert sagemaker.describe_endpoint(EndpointName="textclf-path")["EndpointConfigName"] == "theirs"
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == ["theirs"]


@pytest.mark.parametrize(
    ("change", "extra", "cause", "remedy"),
    [
        ({"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, [], "No AWS credentials found", "AWS_PROFILE"),
        ({"AWS_DEFAULT_REGION": None}, [], "No AWS region is set", "set AWS_REGION"),
        ({"SAGEMAKER_ROLE_ARN": None}, [], "No SageMaker execution role given", "SAGEMAKER_ROLE_ARN"),
        ({"SAGEMAKER_ROLE_ARN": "textclf-role"}, [], "Not an IAM role ARN", "arn:aws:iam::"),
        ({}, ["--region", "us-east-1"], "The image is in ECR in eu-west-1, but the job would run in us-east-1",
         "make push AWS_REGION=us-east-1"),
        ({"AWS_DEFAULT_REGION": None, "AWS_REGION": "us-west-2"}, [], "would run in us-west-2", "--region eu-west-1"),
        ({}, ["--image", "docker.io/library/textclf:latest"], "Not an ECR image URI", "make push"),
    ],
    ids=["credentials", "region", "role", "role-shape", "image-region", "aws-region-variable", "not-ecr"],
)  # fmt: skip
def test_errors_say_what_is_wrong_then_what_to_do_and_create_nothing(aws, tmp_path, change, extra, cause, remedy):
    result = ship(aws.env(tmp_path, **change), *TRAIN, *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    first, second = result.stderr.strip().splitlines()[:2]
    assert first.startswith("error: ") and cause in first
    assert remedy in second
    assert aws.requests_for("SageMaker.CreateTrainingJob") == []

"""`python -m shipping deploy` and `transform` against the emulator: the model, endpoint config, endpoint and
transform job requests, the smoke invocation, and an endpoint that fails to come up."""

from __future__ import annotations

import json

from aws_standin import IMAGE, ROLE, scripted_lifecycle, ship

MODEL_DATA = "s3://textclf-data/jobs/textclf-train-test/output/model.tar.gz"
ANSWER = [{"label": "sport", "score": 0.97}, {"label": "weather", "score": 0.95}]


def deploy_args(*extra: str) -> list[str]:
    return ["deploy", "--image", IMAGE, "--model-data", MODEL_DATA, "--name", "textclf-test", "--poll-seconds",
            "0.05", *extra]  # fmt: skip


def test_real_time_endpoint_is_created_and_invoked(aws, tmp_path):
    aws.endpoint_answers(json.dumps(ANSWER))
    result = ship(aws.env(tmp_path), *deploy_args("--instance-type", "ml.g4dn.xlarge", "--instance-count", "2"))
    assert result.returncode == 0, result.stderr
    sagemaker = aws.client("sagemaker")
    model = sagemaker.describe_model(ModelName="textclf-test")
    assert model["PrimaryContainer"] == {"Image": IMAGE, "ModelDataUrl": MODEL_DATA}
    assert model["ExecutionRoleArn"] == ROLE
    [variant] = sagemaker.describe_endpoint_config(EndpointConfigName="textclf-test")["ProductionVariants"]
    assert variant["ModelName"] == "textclf-test"
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.g4dn.xlarge", 2)
    assert "ServerlessConfig" not in variant
    endpoint = sagemaker.describe_endpoint(EndpointName="textclf-test")
    assert (endpoint["EndpointConfigName"], endpoint["EndpointStatus"]) == ("textclf-test", "InService")
    # The smoke request is what a client sends: JSON {"inputs": [...]} to /endpoints/<name>/invocations.
    [invocation] = aws.recorded("/endpoints/textclf-test/invocations")
    assert invocation["headers"]["Content-Type"] == "application/json"
    assert invocation["headers"]["Accept"] == "application/json"
    assert json.loads(invocation["body"]) == {"inputs": ["The striker scored a late goal.", "Rain and wind tomorrow."]}
    assert f"smoke invocation answered: {json.dumps(ANSWER)}" in result.stdout


def test_serverless_endpoint_config_named_from_the_environment(aws, tmp_path):
    aws.endpoint_answers(json.dumps(ANSWER[:1]))
    env = aws.env(tmp_path, TEXTCLF_ENDPOINT_NAME="textclf-serverless")
    serverless = ["--serverless", "--memory-mb", "4096", "--max-concurrency", "3"]
    result = ship(env, "deploy", "--image", IMAGE, "--model-data", MODEL_DATA, *serverless, "--smoke-text",
                  "Rain and wind tomorrow.", "--poll-seconds", "0.05")  # fmt: skip
    assert result.returncode == 0, result.stderr
    sagemaker = aws.client("sagemaker")
    [variant] = sagemaker.describe_endpoint_config(EndpointConfigName="textclf-serverless")["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 3}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert sagemaker.describe_endpoint(EndpointName="textclf-serverless")["EndpointStatus"] == "InService"


def test_serverless_memory_must_be_a_size_sagemaker_offers(aws, tmp_path):
    result = ship(aws.env(tmp_path), *deploy_args("--serverless", "--memory-mb", "5000"))
    assert result.returncode == 2
    assert "Serverless memory 5000 MB is not a size SageMaker offers" in result.stderr
    assert aws.requests_for("SageMaker.CreateModel") == []  # refused before anything was created


def test_failed_endpoint_prints_the_reason_and_cleanup_removes_what_deploy_made(aws, tmp_path):
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    scripted_lifecycle("endpoint", [{"endpoint_status": "Creating"},
                                    {"endpoint_status": "Failed", "failure_reason": reason}])  # fmt: skip
    env = aws.env(tmp_path)
    result = ship(env, *deploy_args("--instance-type", "ml.g4dn.xlarge"))
    assert result.returncode == 1
    assert "endpoint Creating" in result.stdout
    assert f"endpoint textclf-test is Failed: {reason}" in result.stderr
    assert aws.recorded("/invocations") == []  # no smoke request to an endpoint that is not in service

    result = ship(env, "cleanup")
    assert result.returncode == 0, result.stderr
    sagemaker = aws.client("sagemaker")
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []


def test_aws_refusal_is_reported_and_what_was_made_is_still_cleaned_up(aws, tmp_path):
    env = aws.env(tmp_path)
    result = ship(env, *deploy_args("--instance-type", "ml.nope.xlarge"))
    assert result.returncode == 2
    first, second = result.stderr.strip().splitlines()[:2]
    assert (
        first.startswith("error: AWS CreateEndpointConfig failed: ValidationException:") and "ml.nope.xlarge" in first
    )
    assert "Fix the value the message names" in second
    assert [m["ModelName"] for m in aws.client("sagemaker").list_models()["Models"]] == ["textclf-test"]
    cleaned = ship(env, "cleanup")
    assert cleaned.returncode == 0 and cleaned.stdout.strip() == "deleted model textclf-test", cleaned.stdout
    assert aws.client("sagemaker").list_models()["Models"] == []


def test_wrong_answer_to_the_smoke_request_fails_the_deploy(aws, tmp_path):
    aws.endpoint_answers('{"error": "model not loaded", "code": 503}')
    result = ship(aws.env(tmp_path), *deploy_args("--instance-type", "ml.g4dn.xlarge"))
    assert result.returncode == 1
    assert "answered the smoke request with" in result.stderr and "not one label per text" in result.stderr


def test_transform_leaves_execution_parameters_to_the_container(aws, tmp_path):
    env = aws.env(tmp_path)
    result = ship(env, "transform", "--image", IMAGE, "--model-data", MODEL_DATA, "--input",
                  "s3://textclf-data/batch/in/", "--output", "s3://textclf-data/batch/out/", "--job-name",
                  "textclf-transform-test", "--poll-seconds", "0.05")  # fmt: skip
    assert result.returncode == 0, result.stderr
    sagemaker = aws.client("sagemaker")
    job = sagemaker.describe_transform_job(TransformJobName="textclf-transform-test")
    assert job["ModelName"] == "textclf-transform-test"
    assert (
        sagemaker.describe_model(ModelName="textclf-transform-test")["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    )
    assert job["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://textclf-data/batch/in/"}},
        "ContentType": "application/jsonlines",
        "SplitType": "Line",
    }
    assert job["TransformOutput"] == {
        "S3OutputPath": "s3://textclf-data/batch/out/",
        "Accept": "application/jsonlines",
        "AssembleWith": "Line",
    }
    # Unset, so SageMaker asks the container's GET /execution-parameters.
    [request] = aws.requests_for("SageMaker.CreateTransformJob")
    assert not {"MaxPayloadInMB", "BatchStrategy", "MaxConcurrentTransforms"} & set(request)
    assert "output: s3://textclf-data/batch/out/" in result.stdout


def test_transform_overrides_on_an_existing_model(aws, tmp_path):
    aws.client("sagemaker").create_model(ModelName="theirs", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    result = ship(aws.env(tmp_path), "transform", "--model", "theirs", "--input", "s3://textclf-data/batch/in/",
                  "--output", "s3://textclf-data/batch/out/", "--max-payload-mb", "2", "--batch-strategy",
                  "SingleRecord", "--max-concurrent", "4", "--instance-type", "ml.m5.xlarge", "--poll-seconds",
                  "0.05")  # fmt: skip
    assert result.returncode == 0, result.stderr
    [request] = aws.requests_for("SageMaker.CreateTransformJob")
    assert request["ModelName"] == "theirs"
    assert (request["MaxPayloadInMB"], request["BatchStrategy"], request["MaxConcurrentTransforms"]) == (
        2, "SingleRecord", 4)  # fmt: skip
    assert request["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}
    assert len(aws.requests_for("SageMaker.CreateModel")) == 1  # the test's own: the given model is used

"""`python -m shipping train` against the emulator: the exact CreateTrainingJob request, the progress display,
and a job that fails with a reason."""

from __future__ import annotations

import json

from aws_standin import IMAGE, REPO, ROLE, scripted_lifecycle, ship

TAG = {"Key": "textclf:created-by", "Value": "sagemaker-text-classifier/shipping"}


def readme_metric_definitions() -> list[dict]:
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- METRIC_DEFINITIONS_START -->")[1].split("<!-- METRIC_DEFINITIONS_END -->")[0]
    return json.loads(block.split("```json")[1].split("```")[0])


def train_args(*extra: str) -> list[str]:
    data, jobs = "s3://textclf-data/sample/train/", "s3://textclf-data/jobs/"
    return ["train", "--image", IMAGE, "--train", data, "--output", jobs, "--job-name", "textclf-train-test",
            "--poll-seconds", "0.05", *extra]  # fmt: skip


def test_training_job_request_is_what_sagemaker_needs(aws, tmp_path):
    hyperparameter_file = tmp_path / "hp.json"
    hyperparameter_file.write_text(json.dumps({"max_length": 128, "multi_label": False, "epochs": 5}))
    result = ship(
        aws.env(tmp_path),
        *train_args(
            "--validation", "s3://textclf-data/sample/validation/", "--test", "s3://textclf-data/sample/test/",
            "--model-channel", "s3://textclf-data/minilm/", "--hyperparameters", str(hyperparameter_file),
            "--hp", "epochs=3", "--hp", "learning_rate=2e-05", "--instance-type", "ml.g5.2xlarge",
            "--spot", "--max-runtime", "3600", "--max-wait", "7200",
        ),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job = aws.client("sagemaker").describe_training_job(TrainingJobName="textclf-train-test")
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert job["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert job["RoleArn"] == ROLE
    # Strings only, as SageMaker passes them to `train`; --hp wins over the file.
    assert job["HyperParameters"] == {"max_length": "128", "multi_label": "false", "epochs": "3",
                                      "learning_rate": "2e-05"}  # fmt: skip
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in job["InputDataConfig"]}
    assert {name: source["S3Uri"] for name, source in channels.items()} == {
        "train": "s3://textclf-data/sample/train/",
        "validation": "s3://textclf-data/sample/validation/",
        "test": "s3://textclf-data/sample/test/",
        "model": "s3://textclf-data/minilm/",
    }
    assert all(source["S3DataType"] == "S3Prefix" for source in channels.values())
    assert job["OutputDataConfig"]["S3OutputPath"] == "s3://textclf-data/jobs"
    assert job["ResourceConfig"] == {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["CheckpointConfig"] == {
        "S3Uri": "s3://textclf-data/jobs/textclf-train-test/checkpoints/",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert aws.client("sagemaker").list_tags(ResourceArn=job["TrainingJobArn"])["Tags"] == [TAG]
    # moto's describe replaces MetricDefinitions with a fixed example, so read the request as it was sent.
    [request] = aws.requests_for("SageMaker.CreateTrainingJob")
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == readme_metric_definitions()


def test_a_job_on_two_instances_asks_for_two(aws, tmp_path):
    result = ship(aws.env(tmp_path), *train_args("--instance-count", "2", "--instance-type", "ml.g5.12xlarge"))
    assert result.returncode == 0, result.stderr
    job = aws.client("sagemaker").describe_training_job(TrainingJobName="textclf-train-test")
    assert job["ResourceConfig"] == {"InstanceType": "ml.g5.12xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30}


def test_on_demand_job_has_no_spot_settings_and_a_default_checkpoint_path(aws, tmp_path):
    result = ship(aws.env(tmp_path), *train_args("--checkpoint-s3", "s3://textclf-ckpt/run1/"))
    assert result.returncode == 0, result.stderr
    [request] = aws.requests_for("SageMaker.CreateTrainingJob")
    assert request["EnableManagedSpotTraining"] is False
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert request["CheckpointConfig"] == {"S3Uri": "s3://textclf-ckpt/run1/", "LocalPath": "/opt/ml/checkpoints"}
    assert request["HyperParameters"] == {}


def test_progress_then_model_artifact_and_final_metrics(aws, tmp_path):
    scripted_lifecycle(
        "training_job",
        [
            {"training_job_status": "InProgress", "secondary_status": "Starting", "final_metric_data_list": []},
            {"secondary_status": "Training", "secondary_status_transitions": [
                {"Status": "Training", "StatusMessage": "Training image download completed."}]},
            {"training_job_status": "Completed", "secondary_status": "Completed", "final_metric_data_list": [
                {"MetricName": "validation:macro_f1", "Value": 0.9123},
                {"MetricName": "train:loss", "Value": 0.25}]},
        ],
    )  # fmt: skip
    result = ship(aws.env(tmp_path), *train_args())
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("InProgress / Starting") < out.index("InProgress / Training: Training image download completed.")
    assert "model artifact: s3://textclf-data/jobs/textclf-train-test/output/model.tar.gz" in out
    assert "final metrics: validation:macro_f1=0.9123, train:loss=0.25" in out


def test_failed_job_prints_sagemakers_reason_and_exits_non_zero(aws, tmp_path):
    reason = "AlgorithmError: train exited with 2: no rows with both a text and a label in the train channel"
    scripted_lifecycle(
        "training_job",
        [
            {"training_job_status": "InProgress", "secondary_status": "Downloading"},
            {"training_job_status": "Failed", "secondary_status": "Failed", "failure_reason": reason},
        ],
    )
    result = ship(aws.env(tmp_path), *train_args())
    assert result.returncode == 1
    assert "InProgress / Downloading" in result.stdout
    assert f"training job textclf-train-test failed: {reason}" in result.stderr
    assert "model artifact" not in result.stdout


def test_bad_settings_are_refused_before_any_job_starts(aws, tmp_path):
    env = aws.env(tmp_path)
    cases = {
        ("--spot", "--max-runtime", "3600", "--max-wait", "60"): "--max-wait (60 s) is shorter than --max-runtime",
        ("--max-wait", "7200",): "--max-wait applies to managed spot training only",
        ("--hp", "epochs"): "--hp 'epochs' is not NAME=VALUE",
        ("--hp", "epoch=3"): "Unknown hyperparameter 'epoch'. Did you mean 'epochs'?",  # train's own check
        ("--hp", "lr_scheduler=cosine_annealing"): "'lr_scheduler' is 'cosine_annealing', which is not one of",
        ("--validation", "bucket/validation"): "--validation is not an S3 URI",
        ("--model-channel", "bucket/minilm"): "--model-channel is not an S3 URI",
        ("--hyperparameters", "no-such-file.json"): "--hyperparameters no-such-file.json: not a readable JSON object",
    }  # fmt: skip
    for extra, message in cases.items():
        result = ship(env, *train_args(*extra))
        assert result.returncode == 2, (extra, result.stderr)
        assert message in result.stderr
    assert aws.requests_for("SageMaker.CreateTrainingJob") == []

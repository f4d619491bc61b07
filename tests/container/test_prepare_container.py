"""The image as a SageMaker Processing job runs it: `docker run` with the processing mounts and config files and
no command (or only the job's ContainerArguments), then `train` on the channels it wrote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from docker_support import docker, ml_tree, open_to_any_user
from harness import exit_message, make_processing_tree
from sample_data import make_rows

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

SPLITS = ("train", "validation", "test")


def _processing_job(base: Path, arguments: list[str] | None = None) -> Path:
    """config/processingjobconfig.json and resourceconfig.json as SageMaker writes them for one instance."""
    config = base / "config"
    config.mkdir(parents=True, exist_ok=True)
    job = {
        "ProcessingJobArn": "arn:aws:sagemaker:eu-west-1:111122223333:processing-job/prepare-1",
        "ProcessingJobName": "prepare-1",
        "AppSpecification": {"ImageUri": "image", "ContainerEntrypoint": None, "ContainerArguments": arguments},
        "Environment": {},
        "ProcessingInputs": [
            {"InputName": name, "S3Input": {"LocalPath": f"/opt/ml/processing/input/{name}", "S3InputMode": "File"}}
            for name in ("raw", "model")
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {"OutputName": name, "S3Output": {"LocalPath": f"/opt/ml/processing/output/{name}"}}
                for name in (*SPLITS, "report")
            ]
        },
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge"}},
    }
    (config / "processingjobconfig.json").write_text(json.dumps(job))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    return base


def _run_job(image: str, name: str, base: Path, *arguments: str) -> subprocess.CompletedProcess:
    """The mounts a processing job has: each input read-only, the outputs, config/ and output/ (the message)."""
    mounts = []
    for item in sorted(p.name for p in (base / "processing" / "input").iterdir()):
        mounts += ["--volume", f"{base}/processing/input/{item}:/opt/ml/processing/input/{item}:ro"]
    (base / "processing" / "output").mkdir(parents=True, exist_ok=True)
    (base / "output").mkdir(exist_ok=True)
    mounts += ["--volume", f"{base}/processing/output:/opt/ml/processing/output"]
    mounts += ["--volume", f"{base}/config:/opt/ml/config:ro", "--volume", f"{base}/output:/opt/ml/output"]
    return docker("run", "--name", name, "--network", "none", *mounts, image, *arguments, timeout=600, check=False)


def _raw_rows() -> list[dict]:
    rows = make_rows(200)
    return rows + [rows[0], {"text": rows[1]["text"].upper(), "label": rows[1]["label"]}, {"text": "", "label": "x"}]


def test_a_processing_job_without_command_prepares_channels_that_train_reads(
    image, containers, tmp_path, tiny_bert_base
):
    base = make_processing_tree(tmp_path / "job", {"raw": {"news.csv": _raw_rows()}, "model": tiny_bert_base})
    _processing_job(base)
    result = _run_job(image, containers.name("prepare-job"), base)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "so running prepare" in result.stderr
    report = json.loads((base / "processing/output/report/report.json").read_text())
    assert report["rows_read"] == 203 and report["rows_dropped"] == {"empty text": 1}
    assert report["duplicates"] == {"exact": 1, "normalised": 1, "label_conflicts": 0, "removed": 2}
    assert {name: report["splits"][name]["rows"] for name in SPLITS} == {"train": 160, "validation": 20, "test": 20}
    assert set(report["plots"]) == {"label_distribution.png", "token_lengths.png"}
    assert not (base / "output" / "message").exists()

    # The channels it wrote, given to a training job unchanged, with the hyperparameters the report names.
    out = open_to_any_user(base / "processing" / "output")
    tree = ml_tree(tmp_path / "train", tiny_bert_base, **report["train_hyperparameters"])
    for name in SPLITS:
        subprocess.run(["rm", "-rf", str(tree / "input/data" / name)], check=True)
        subprocess.run(["cp", "-r", str(out / name), str(tree / "input/data" / name)], check=True)
    trained = docker("run", "--name", containers.name("prepare-train"), "--network", "none",
                     "--volume", f"{tree}:/opt/ml", image, "train", timeout=600, check=False)  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert "on 20 validation and 20 test texts" in trained.stdout


def test_a_processing_job_with_bad_arguments_fails_with_its_exit_message(image, containers, tmp_path, tiny_bert_base):
    base = make_processing_tree(tmp_path / "job", {"raw": {"news.csv": _raw_rows()}, "model": tiny_bert_base})
    _processing_job(base, ["--label-column", "topic"])
    result = _run_job(image, containers.name("prepare-bad"), base, "--label-column", "topic")
    assert result.returncode == 1
    message = exit_message(base)
    assert "no column 'topic'" in message and "columns found: 'text', 'label'" in message, message
    assert not (base / "processing" / "output" / "train").exists()


def test_batch_scoring_runs_as_a_processing_job(image, containers, tmp_path, served_model):
    texts = [row["text"] for row in make_rows(12, seed=5)]
    base = make_processing_tree(tmp_path / "job", {"raw": {"texts.csv": [{"text": t} for t in texts]}})
    (base / "processing" / "input" / "model").mkdir()
    subprocess.run(["cp", "-r", f"{served_model}/.", str(base / "processing" / "input" / "model")], check=True)
    _processing_job(base, ["score"])
    result = _run_job(image, containers.name("prepare-score"), base, "score")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = (base / "processing" / "output" / "predictions" / "raw" / "texts.jsonl").read_text().splitlines()
    predictions = [json.loads(line) for line in lines]
    assert [p["text"] for p in predictions] == texts
    assert all(p["prediction"]["label"] in {"finance", "sport", "tech", "weather"} for p in predictions)

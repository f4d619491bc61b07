"""`prepare` as the SageMaker Python SDK runs a processing job in local mode: `Processor(image_uri=...,
entrypoint=["prepare"])`. Local mode uploads every input to S3 and the outputs go there, so S3 is the stand-in
(moto on loopback); the channels the job wrote then train with `Estimator.fit`, unchanged."""

from __future__ import annotations

import json

from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
from sample_data import make_rows, write_rows
from sdk_support import ROLE, make_estimator

SPLITS = ("train", "validation", "test")


def _raw_rows() -> list[dict]:
    """The sample topics, with one exact and one case-only duplicate and a row without text planted."""
    rows = make_rows(200, seed=7)
    return rows + [rows[0], {"text": rows[1]["text"].upper(), "label": rows[1]["label"]}, {"text": "", "label": "tech"}]


def _read_s3(session, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return session.s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_processor_prepares_channels_that_fit_trains_on(image, s3_session, base_model, tmp_path, capfd):
    raw = tmp_path / "raw"
    write_rows(raw / "news.csv", _raw_rows(), "csv")
    processor = Processor(
        role=ROLE,
        image_uri=image,
        instance_count=1,
        instance_type="local",
        entrypoint=["prepare"],
        sagemaker_session=s3_session,
    )
    processor.run(
        inputs=[
            ProcessingInput(source=str(raw), destination="/opt/ml/processing/input/raw"),
            ProcessingInput(source=str(base_model), destination="/opt/ml/processing/input/model"),
        ],
        outputs=[
            ProcessingOutput(source=f"/opt/ml/processing/output/{name}", output_name=name)
            for name in (*SPLITS, "report")
        ],
        arguments=["--seed", "3"],
        wait=True,
        logs=False,
    )
    described = processor.latest_job.describe()
    assert described["ProcessingJobStatus"] == "Completed", described
    written = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in described["ProcessingOutputConfig"]["Outputs"]}
    assert all(uri.startswith(f"s3://{s3_session.default_bucket()}/") for uri in written.values()), written

    # The report, read back from S3 as a user would: the planted rows counted exactly.
    report = json.loads(_read_s3(s3_session, f"{written['report']}/report.json"))
    assert report["rows_read"] == 203 and report["rows_dropped"] == {"empty text": 1}, report
    assert report["duplicates"]["removed"] == 2, report["duplicates"]
    assert {name: report["splits"][name]["rows"] for name in SPLITS} == {"train": 160, "validation": 20, "test": 20}
    keys = {o["Key"] for o in s3_session.s3_client.list_objects_v2(Bucket=s3_session.default_bucket())["Contents"]}
    assert any(key.endswith("report/label_distribution.png") for key in keys), sorted(keys)

    # The S3 channels it wrote, with the hyperparameters its report recommends, train as they are.
    estimator = make_estimator(image, s3_session, tmp_path / "fit-output", **report["train_hyperparameters"])
    capfd.readouterr()
    estimator.fit({name: written[name] for name in SPLITS} | {"model": f"file://{base_model}"}, logs="All")
    output = capfd.readouterr().out
    assert "on 20 validation and 20 test texts" in output, output[-3000:]
    assert estimator.model_data.endswith("model.tar.gz")

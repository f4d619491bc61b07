"""Batch transform in local mode: one output line per input line, in order; a failed request fails the job."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
import urllib3
from docker_support import Containers, ServingContainer
from sample_data import make_rows
from sdk_support import extract, file_uri, local_path, stop_compose_containers

TEXTS = [row["text"] for row in make_rows(24, seed=11)]


@pytest.fixture(scope="module")
def reference_labels(image, trained, tmp_path_factory) -> list[str]:
    """What the model answers for each text, asked one at a time from a plain `docker run IMAGE serve`."""
    model_dir = extract(local_path(trained.model_data), tmp_path_factory.mktemp("reference") / "model")
    containers = Containers(os.getpid())
    try:
        server = ServingContainer(image, containers.name("sdk-reference"), model_dir).start().wait_ready()
        return [server.invoke([text]).json()[0]["label"] for text in TEXTS]
    finally:
        containers.remove_all()


def _input_file(directory, lines: list[str]) -> str:
    directory.mkdir()
    (directory / "texts.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return file_uri(directory)


@pytest.mark.parametrize(
    ("strategy", "accept"), [("MultiRecord", "application/jsonlines"), ("SingleRecord", "text/csv")]
)
def test_one_output_line_per_input_line_in_input_order(trained, reference_labels, tmp_path, strategy, accept):
    source = _input_file(tmp_path / "in", [json.dumps({"inputs": text}) for text in TEXTS])
    transformer = trained.transformer(
        instance_count=1,
        instance_type="local",
        strategy=strategy,
        assemble_with="Line",
        accept=accept,
        max_payload=1,
        output_path=file_uri(tmp_path / "out"),
    )
    transformer.transform(source, content_type="application/jsonlines", split_type="Line", logs=False)
    output = (tmp_path / "out" / "texts.jsonl.out").read_text(encoding="utf-8")
    lines = output.splitlines()
    assert len(lines) == len(TEXTS) and "" not in lines, output
    if accept == "text/csv":
        labels = [row[0] for row in csv.reader(io.StringIO(output))]
    else:
        labels = [json.loads(line)["label"] for line in lines]
    assert labels == reference_labels


def test_a_failed_request_fails_the_job(trained, tmp_path):
    # One empty text makes its request fail (422): the job must fail, not write the error as an output line.
    lines = [json.dumps({"inputs": text}) for text in TEXTS[:3]] + [json.dumps({"inputs": ""})]
    source = _input_file(tmp_path / "in", lines)
    transformer = trained.transformer(
        instance_count=1,
        instance_type="local",
        strategy="SingleRecord",
        assemble_with="Line",
        accept="application/jsonlines",
        output_path=file_uri(tmp_path / "out"),
    )
    try:
        with pytest.raises(urllib3.exceptions.ProtocolError):
            transformer.transform(source, content_type="application/jsonlines", split_type="Line", logs=False)
    finally:
        stop_compose_containers()  # local mode leaves the serving container of a failed job running
    assert not (tmp_path / "out" / "texts.jsonl.out").exists()

"""Checks of the image's sources that need no Docker: the base pin, local_test's /opt/ml tree, the shell scripts."""

from __future__ import annotations

import csv
import json
import re
import subprocess

import pytest
from docker_support import REPO
from sample_data import make_rows

pytestmark = pytest.mark.container

TEST_DIR = REPO / "local_test" / "test_dir"
SCRIPTS = [
    *sorted((REPO / "docker").glob("*.sh")),
    REPO / "docker" / "entrypoint",
    *sorted((REPO / "local_test").glob("*.sh")),
]


def base_image_env() -> dict[str, str]:
    lines = (REPO / "docker" / "base-image.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_dockerfile_default_base_is_the_pinned_public_base():
    dockerfile = (REPO / "Dockerfile").read_text()
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.MULTILINE).group(1)
    assert default == base_image_env()["PUBLIC_BASE_IMAGE"]
    assert re.fullmatch(r"pytorch/pytorch:[\w.-]+-runtime@sha256:[0-9a-f]{64}", default), "pin tag and digest"


def test_test_dir_has_the_three_config_files_sagemaker_writes():
    config = TEST_DIR / "input" / "config"
    hyperparameters = json.loads((config / "hyperparameters.json").read_text())
    assert all(isinstance(value, str) for value in hyperparameters.values())  # SageMaker passes strings only
    channels = json.loads((config / "inputdataconfig.json").read_text())
    assert "train" in channels and set(channels) <= {"train", "validation", "test", "model"}
    assert all(channel["TrainingInputMode"] == "File" for channel in channels.values())
    resources = json.loads((config / "resourceconfig.json").read_text())
    assert resources["current_host"] in resources["hosts"]


def test_sample_data_is_what_the_generator_makes():
    # local_test/test_dir/input/data/train/train.csv == `python tools/sample_data.py train.csv`
    with open(TEST_DIR / "input" / "data" / "train" / "train.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == make_rows(400)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_shell_scripts_parse(script):
    shell = "sh" if script.name == "entrypoint" else "bash"
    result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

"""docker/entrypoint's dispatch, run on the host next to stand-in `train` and `serve` scripts (no Docker needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from docker_support import REPO

pytestmark = pytest.mark.container

STAND_IN = '#!/bin/sh\necho "{name} pid=$$ args=$*"\n'


@pytest.fixture
def program_dir(tmp_path) -> Path:
    """A copy of /opt/program: the entrypoint, and `train`/`serve` that only say who they are."""
    program = tmp_path / "program"
    program.mkdir()
    shutil.copy(REPO / "docker" / "entrypoint", program / "entrypoint")
    for name in ("train", "serve", "prepare"):
        (program / name).write_text(STAND_IN.format(name=name))
        (program / name).chmod(0o755)
    return program


def dispatch(program_dir: Path, base_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(program_dir / "entrypoint"), *args],
        env={"PATH": "/usr/bin:/bin", "SAGEMAKER_BASE_DIR": str(base_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("program", ["train", "serve", "prepare"])
def test_train_and_serve_run_with_their_arguments(program_dir, tmp_path, program):
    result = dispatch(program_dir, tmp_path, program, "--help", "x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{program} ") and result.stdout.strip().endswith("args=--help x")


def test_programs_replace_the_entrypoint_process(program_dir, tmp_path):
    # exec, not a child: in the container the program is PID 1 and gets SIGTERM itself.
    result = subprocess.run(
        ["sh", "-c", f'echo "shell pid=$$"; exec "{program_dir / "entrypoint"}" train'],
        env={"PATH": "/usr/bin:/bin", "SAGEMAKER_BASE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    shell_pid, train_pid = (line.split("pid=")[1].split()[0] for line in result.stdout.splitlines())
    assert shell_pid == train_pid


def test_no_argument_with_a_job_config_runs_train(program_dir, tmp_path):
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / "inputdataconfig.json").write_text(json.dumps({"train": {}}))
    result = dispatch(program_dir, tmp_path)
    assert result.stdout.startswith("train ")
    assert "inputdataconfig.json exists, so running train" in result.stderr


def test_no_argument_with_a_train_channel_runs_train(program_dir, tmp_path):
    (tmp_path / "input" / "data" / "train").mkdir(parents=True)
    result = dispatch(program_dir, tmp_path)
    assert result.stdout.startswith("train ")
    assert "input/data/train exists, so running train" in result.stderr


def test_no_argument_and_no_training_input_runs_serve(program_dir, tmp_path):
    (tmp_path / "model").mkdir()
    result = dispatch(program_dir, tmp_path)
    assert result.stdout.startswith("serve ")
    assert "no training input under" in result.stderr and "so running serve" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line saying what it chose and why


def test_any_other_command_is_executed(program_dir, tmp_path):
    result = dispatch(program_dir, tmp_path, "sh", "-c", "echo $0-$1", "a", "b")
    assert result.stdout.strip() == "a-b"


def test_a_missing_command_fails_like_exec(program_dir, tmp_path):
    result = dispatch(program_dir, tmp_path, "no-such-command-here")
    assert result.returncode == 127


def _processing_job(base_dir: Path) -> None:
    (base_dir / "config").mkdir(parents=True)
    (base_dir / "config" / "processingjobconfig.json").write_text(json.dumps({"ProcessingJobName": "p"}))


def test_no_argument_in_a_processing_job_runs_prepare_never_serve(program_dir, tmp_path):
    # Without this, a processing job would start the server and hang until the job's time limit.
    _processing_job(tmp_path)
    (tmp_path / "model").mkdir()
    result = dispatch(program_dir, tmp_path)
    assert result.stdout.startswith("prepare "), result
    assert "processingjobconfig.json exists, so running prepare" in result.stderr


def test_no_argument_with_processing_inputs_and_no_config_runs_prepare(program_dir, tmp_path):
    (tmp_path / "processing" / "input" / "raw").mkdir(parents=True)
    result = dispatch(program_dir, tmp_path)
    assert result.stdout.startswith("prepare ")
    assert "processing/input exists, so running prepare" in result.stderr


@pytest.mark.parametrize("given", [["score"], ["score", "--model-dir", "/m"]])
def test_score_runs_prepare_score(program_dir, tmp_path, given):
    result = dispatch(program_dir, tmp_path, *given)
    assert result.stdout.startswith("prepare ") and result.stdout.strip().endswith("args=" + " ".join(given))


def test_flags_alone_in_a_processing_job_go_to_prepare(program_dir, tmp_path):
    # ContainerArguments without a ContainerEntrypoint arrive as the entrypoint's own arguments.
    _processing_job(tmp_path)
    result = dispatch(program_dir, tmp_path, "--test-share", "0.2")
    assert result.stdout.startswith("prepare ") and result.stdout.strip().endswith("args=--test-share 0.2")


def test_flags_outside_a_processing_job_are_not_taken_for_prepare(program_dir, tmp_path):
    result = dispatch(program_dir, tmp_path, "--version")
    assert result.returncode == 127 and not result.stdout

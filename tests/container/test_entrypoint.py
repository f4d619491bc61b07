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
    for name in ("train", "serve"):
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


@pytest.mark.parametrize("program", ["train", "serve"])
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

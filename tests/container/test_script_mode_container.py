"""Script mode in the real image: `docker run IMAGE train` on a hand-made /opt/ml tree whose job names its own
program, run by the SageMaker training toolkit, as SageMaker runs it (root, no network)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from docker_support import container_state, docker, logs, open_to_any_user
from harness import make_ml_tree
from sample_data import make_rows
from script_mode_support import (
    FAILING_SCRIPT,
    SIGTERM_SCRIPT,
    TRAIN_SCRIPT,
    WHEEL_SCRIPT,
    build_wheel,
    source_dir,
)

pytestmark = [pytest.mark.container, pytest.mark.timeout(600)]

SCRIPT_MODE = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"/opt/ml/code"'}


def script_tree(base: Path, script: str, hyperparameters: dict | None = None) -> Path:
    """An /opt/ml tree with the sample data as `train` and `script` as code/train.py."""
    make_ml_tree(base, hyperparameters if hyperparameters is not None else SCRIPT_MODE, {"train": make_rows(120)})
    source_dir(base / "code", script)
    return base


def run_train(image: str, containers, base: Path, *args: str, timeout: float = 300):
    open_to_any_user(base, writable=True)
    name = containers.name("script")
    return docker("run", "--name", name, "--network", "none", "--volume", f"{base}:/opt/ml", *args, image, "train",
                  timeout=timeout, check=False)  # fmt: skip


def failure(base: Path) -> str:
    path = base / "output" / "failure"
    return path.read_text() if path.exists() else ""


def test_a_script_mode_job_runs_the_users_script_with_its_hyperparameters(image, containers, tmp_path):
    base = script_tree(tmp_path, TRAIN_SCRIPT, {**SCRIPT_MODE, "epochs": "3", "label-column": '"label"'})
    result = run_train(image, containers, base)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    model = json.loads((base / "model" / "model.json").read_text())
    assert model["rows"] == 120 and model["epochs"] == 3, model  # SM_CHANNEL_TRAIN read, --epochs 3 passed
    assert model["labels"] == ["finance", "sport", "tech", "weather"]
    assert "trained on 120 rows" in output
    assert not (base / "output" / "failure").exists()
    assert not list((base / "model").glob("*.safetensors")), "the built-in trainer ran too"


def test_sigterm_reaches_the_users_script_and_the_job_exits_well_within_120_s(image, containers, tmp_path):
    base = open_to_any_user(script_tree(tmp_path, SIGTERM_SCRIPT), writable=True)
    name = containers.name("script-sigterm")
    docker("run", "--detach", "--name", name, "--network", "none", "--volume", f"{base}:/opt/ml", image, "train")
    deadline = time.monotonic() + 120
    while "ready for SIGTERM" not in logs(name):
        assert container_state(name)["Running"], logs(name)[-4000:]
        assert time.monotonic() < deadline, f"the script did not start:\n{logs(name)[-4000:]}"
        time.sleep(0.5)
    started = time.monotonic()
    docker("stop", "--time", "120", name, timeout=180)  # SIGTERM, then SIGKILL after SageMaker's 120 s
    took = time.monotonic() - started
    checkpoint = base / "model" / "checkpoint.txt"
    assert checkpoint.exists(), f"the script's SIGTERM handler never ran:\n{logs(name)[-4000:]}"
    assert checkpoint.read_text().startswith("saved on SIGTERM")
    assert took < 60, f"the container took {took:.0f} s to stop"
    assert container_state(name)["ExitCode"] == 143
    assert "Stopped by SIGTERM: the training script train.py was sent SIGTERM" in failure(base)


def test_a_failing_script_leaves_its_exit_code_and_stderr_tail_as_the_failure_reason(image, containers, tmp_path):
    # SAGEMAKER_PROGRAM in the environment names the program as well as the hyperparameter does.
    base = script_tree(tmp_path, FAILING_SCRIPT, {})
    result = run_train(image, containers, base, "--env", "SAGEMAKER_PROGRAM=train.py")
    assert result.returncode == 1, (result.stdout + result.stderr)[-4000:]
    reason = failure(base)
    assert len(reason) <= 1024, len(reason)
    assert reason.startswith("The training script train.py failed with exit code 3."), reason
    assert "ValueError: column 'label' holds 3 empty values; the last at row 17" in reason
    assert "noise line 99:" in reason and "noise line 0:" not in reason  # the last lines, within the bound
    assert "reading the data" not in reason  # stdout is not stderr


def test_requirements_install_offline_from_wheels_shipped_in_the_source_directory(image, containers, tmp_path):
    base = script_tree(tmp_path, WHEEL_SCRIPT)
    (base / "code" / "requirements.txt").write_text("tinydep==1.0\n")
    build_wheel(base / "code" / "wheels")
    result = run_train(image, containers, base)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert json.loads((base / "model" / "model.json").read_text()) == {"tinydep": 42}


def test_a_requirement_without_its_wheel_offline_fails_saying_what_to_ship(image, containers, tmp_path):
    base = script_tree(tmp_path, WHEEL_SCRIPT)
    (base / "code" / "requirements.txt").write_text("tinydep==2.0\n")
    build_wheel(base / "code" / "wheels")  # 1.0 only
    result = run_train(image, containers, base)
    assert result.returncode == 1, (result.stdout + result.stderr)[-4000:]
    reason = failure(base)
    assert len(reason) <= 1024, len(reason)
    assert reason.startswith("pip could not install /opt/ml/code/requirements.txt (exit code 1)."), reason
    assert "pip download -d wheels -r requirements.txt" in reason
    assert "tinydep==2.0" in reason  # pip's own words on what was missing
    assert not (base / "model" / "model.json").exists()

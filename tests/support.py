"""Helpers the tests share: lay out an /opt/ml tree and start `train` exactly as the platform would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sample_data import write_rows

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "train"
SERVE = REPO / "serve"

# Fast defaults for tiny models on 2 CPU cores.
TINY_HYPERPARAMETERS = {
    "epochs": "2",
    "per_device_batch_size": "16",
    "max_length": "64",
    "learning_rate": "0.003",
    "warmup_ratio": "0.0",
    "logging_steps": "5",
}


def make_ml_tree(
    base: Path,
    hyperparameters: dict[str, str] | None = None,
    channels: dict[str, list[dict] | Path] | None = None,
    channel_format: str = "csv",
) -> Path:
    """An /opt/ml tree under `base`: all three config files and one directory per channel.

    A channel given as rows is written as one file; one given as a Path is copied (files or a model directory).
    """
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters or {}))
    channels = channels or {}
    data_config = {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for name in channels}
    (config / "inputdataconfig.json").write_text(json.dumps(data_config))
    resource = {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
    (config / "resourceconfig.json").write_text(json.dumps(resource))
    for name, content in channels.items():
        target = base / "input" / "data" / name
        target.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            subprocess.run(["cp", "-r", f"{content}/.", str(target)], check=True)
        else:
            write_rows(target / f"{name}.{channel_format}", content, channel_format)
    return base


def train_env(base: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def run_train(base: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """`train` as a subprocess, as SageMaker starts it (here with the test's interpreter)."""
    return subprocess.run(
        [sys.executable, str(TRAIN)], env=train_env(base, **env), capture_output=True, text=True, timeout=timeout
    )


def start_train(base: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(TRAIN)],
        env=train_env(base, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def failure_text(base: Path) -> str:
    path = base / "output" / "failure"
    return path.read_text() if path.exists() else ""

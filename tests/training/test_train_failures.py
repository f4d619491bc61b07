"""Every error path: a non-zero exit, and a failure file that says the cause first and then what to change."""

import json

import pytest
from harness import failure_text, make_ml_tree, run_train
from sample_data import make_rows
from tiny_models import TINY_HYPERPARAMETERS


def _tree(tmp_path, tiny_bert_base, hyper=None, channels=None):
    channels = {"train": make_rows(40), "model": tiny_bert_base} if channels is None else channels
    return make_ml_tree(tmp_path, {**TINY_HYPERPARAMETERS, "max_steps": "2", **(hyper or {})}, channels)


def _empty_train(tmp_path, model):
    base = _tree(tmp_path, model)
    for file in (base / "input" / "data" / "train").iterdir():
        file.unlink()
    return base


def _script_tree(tmp_path, model, submit_directory, code=True):
    """A script-mode job (the SDK's hyperparameters) whose source directory holds no train.py, or is not there."""
    hyper = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": submit_directory}
    base = _tree(tmp_path, model, hyper=hyper)
    if code:
        (base / "code").mkdir()
        (base / "code" / "README.txt").write_text("not a script")
    return base


def _broken_json(base):
    (base / "input" / "config" / "hyperparameters.json").write_text('{"epochs": "3",')
    return base


CASES = {
    "no train channel": (
        lambda t, m: _tree(t, m, channels={"validation": make_rows(10), "model": m}),
        ["No `train` channel", "validation", "Add an input channel named `train`"],
    ),
    "empty channel": (
        _empty_train,
        ["Channel 'train' has no data files", "Add .csv, .tsv, .jsonl"],
    ),
    "missing column": (
        lambda t, m: _tree(t, m, hyper={"text_column": "body"}),
        ["no column 'body'", "columns found: 'text', 'label'", "text_column"],
    ),
    "one label only": (
        lambda t, m: _tree(t, m, channels={"train": [{"text": f"t {i}", "label": "a"} for i in range(9)], "model": m}),
        ["only one label ('a')", "at least two"],
    ),
    "unknown hyperparameter": (
        lambda t, m: _tree(t, m, hyper={"epoch": "3"}),
        ["Unknown hyperparameter 'epoch'", "Did you mean 'epochs'?"],
    ),
    "malformed hyperparameter": (
        lambda t, m: _tree(t, m, hyper={"per_device_batch_size": "big"}),
        ["'per_device_batch_size' is 'big', which is not an integer", "Set 'per_device_batch_size' to an integer"],
    ),
    "model path not found": (
        lambda t, m: _tree(t, m, hyper={"model_name_or_path": "/nowhere/bert"}, channels={"train": make_rows(40)}),
        ["Model path /nowhere/bert does not exist", "`model` channel"],
    ),
    "hub id without network": (
        lambda t, m: _tree(
            t, m, hyper={"model_name_or_path": "google-bert/bert-base-uncased"}, channels={"train": make_rows(40)}
        ),
        ["'google-bert/bert-base-uncased' is not a local directory", "Put the weights in the `model` channel"],
    ),
    "no base model at all": (
        lambda t, m: _tree(t, m, channels={"train": make_rows(40)}),
        ["No base model", "model_name_or_path"],
    ),
    "script mode without the script": (
        lambda t, m: _script_tree(t, m, f'"{t}/code"'),
        ["The training script train.py failed with exit code 2", "can't open file", "code/train.py"],
    ),
    "script mode without its source directory": (
        lambda t, m: _script_tree(t, m, '"/nowhere/code"', code=False),
        ["The training toolkit failed running train.py", "No such file or directory: '/nowhere/code'"],
    ),
    "malformed hyperparameters file": (
        lambda t, m: _broken_json(_tree(t, m)),
        ["hyperparameters.json is not valid JSON", "JSON object"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_failure_file_says_what_and_how_to_fix(case, tmp_path, tiny_bert_base):
    build, expected = CASES[case]
    base = build(tmp_path, tiny_bert_base)
    result = run_train(base)
    assert result.returncode != 0
    failure = failure_text(base)
    for fragment in expected:
        assert fragment in failure[:1024], f"{fragment!r} not in {failure!r}"
    assert "Traceback" not in failure
    assert not (base / "model" / "model.safetensors").exists()


def test_a_fixed_job_clears_the_old_failure(tmp_path, tiny_bert_base):
    base = _tree(tmp_path, tiny_bert_base, hyper={"epoch": "1"})
    assert run_train(base).returncode != 0 and failure_text(base)
    (base / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({**TINY_HYPERPARAMETERS, "max_steps": "2"})
    )
    assert run_train(base).returncode == 0
    assert failure_text(base) == ""

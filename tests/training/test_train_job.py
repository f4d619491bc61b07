"""`train` run as SageMaker runs it: a subprocess over an /opt/ml tree. What a user gets back is checked."""

import json
import re

import pytest
from harness import REPO, failure_text, make_ml_tree, run_train
from sample_data import make_rows
from tiny_models import TINY_HYPERPARAMETERS


def metric_definitions() -> list[dict]:
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- METRIC_DEFINITIONS_START -->")[1].split("<!-- METRIC_DEFINITIONS_END -->")[0]
    return json.loads(block.split("```json")[1].split("```")[0])


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory, tiny_bert_base):
    rows = make_rows(400)
    base = make_ml_tree(
        tmp_path_factory.mktemp("job"),
        {**TINY_HYPERPARAMETERS, "epochs": "3", "logging_steps": "10"},
        {"train": rows[:300], "validation": rows[300:360], "test": rows[360:], "model": tiny_bert_base},
    )
    result = run_train(base)
    assert result.returncode == 0, result.stdout + result.stderr
    return base, result


def test_model_directory_is_deployable_and_names_its_labels(finished_job):
    base, _ = finished_job
    model = base / "model"
    names = {p.name for p in model.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "textclf.json"} <= names
    assert not any("checkpoint" in n or n.endswith(".pt") for n in names)
    config = json.loads((model / "config.json").read_text())
    assert config["id2label"] == {"0": "finance", "1": "sport", "2": "tech", "3": "weather"}
    assert config["label2id"]["sport"] == 1
    meta = json.loads((model / "textclf.json").read_text())
    assert meta["max_length"] == 64 and meta["labels"] == ["finance", "sport", "tech", "weather"]
    assert {"torch", "transformers"} <= set(meta["libraries"])
    assert meta["hyperparameters"]["epochs"] == 3.0
    assert "accuracy" in meta["metrics"]["validation"] and "accuracy" in meta["metrics"]["test"]


def test_model_files_are_readable_by_any_user(finished_job):
    # serve may run as another uid than train did (docker run --user); a 0600 file would not load there.
    base, _ = finished_job
    for path in [base / "model", *(base / "model").rglob("*")]:
        wanted = 0o555 if path.is_dir() else 0o444
        assert path.stat().st_mode & wanted == wanted, f"{path} is {path.stat().st_mode & 0o777:04o}"


def test_the_new_classification_head_is_one_plain_log_line(finished_job):
    # transformers reports the freshly initialised head as a colour-coded MISSING table, which reads as an error.
    _, result = finished_job
    output = result.stdout + result.stderr
    assert "LOAD REPORT" not in output and "MISSING" not in output and "\x1b[" not in output, output[:3000]
    assert "[transformers]" not in output, output[:3000]  # nor any other warning of the loader
    head_lines = [line for line in output.splitlines() if "new classification head" in line]
    assert len(head_lines) == 1, output[:3000]


def test_a_single_input_named_training_is_the_training_data(tmp_path, tiny_bert_base):
    # The SDKs name the one input of `estimator.fit("s3://...")` `training`.
    hyper = {**TINY_HYPERPARAMETERS, "max_steps": "2"}
    base = make_ml_tree(tmp_path, hyper, {"training": make_rows(40), "model": tiny_bert_base})
    result = run_train(base)
    assert result.returncode == 0, failure_text(base) + result.stderr[-2000:]
    assert (base / "model" / "model.safetensors").is_file()


def test_reports_are_written_and_no_failure_is_left(finished_job):
    base, _ = finished_job
    out = base / "output" / "data"
    metrics = json.loads((out / "metrics.json").read_text())
    evals = [h for h in metrics["history"] if "eval_accuracy" in h]
    assert len(evals) == 3  # once per epoch
    assert metrics["best"]["metric"] == "macro_f1" and metrics["validation"]["accuracy"] >= 0
    for png in ("confusion_matrix.png", "learning_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert failure_text(base) == ""


def test_progress_lines_have_throughput_and_eta(finished_job):
    _, result = finished_job
    progress = [line for line in result.stdout.splitlines() if line.startswith("step=")]
    assert progress, result.stdout
    assert all(re.search(r"samples_per_second=[0-9.]+; .*eta=\d+:\d\d:\d\d;", line) for line in progress)


def test_readme_metric_definitions_parse_every_value(finished_job):
    _, result = finished_job
    definitions = metric_definitions()
    assert len(definitions) <= 40  # SageMaker's limit
    for definition in definitions:
        values = re.findall(definition["Regex"], result.stdout)
        assert values, f"{definition['Name']} matched nothing"
        assert all(float(v) >= 0 for v in values)  # plain decimals, no exponent or nan
    assert len(re.findall(r"eval_accuracy=([0-9.]+);", result.stdout)) == 3


def test_best_model_is_the_one_kept(finished_job):
    base, _ = finished_job
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    best_f1 = max(h["eval_macro_f1"] for h in metrics["history"] if "eval_macro_f1" in h)
    assert metrics["best"]["value"] == pytest.approx(best_f1)
    assert metrics["validation"]["macro_f1"] == pytest.approx(best_f1, abs=1e-6)


def test_gpt2_trains_on_pairs_multi_label_with_every_option(tmp_path, tiny_gpt2_base):
    rows = [
        {"text": r["text"], "second": "extra words", "tags": [r["label"], "news"] if i % 3 else [r["label"]]}
        for i, r in enumerate(make_rows(120))
    ]
    base = make_ml_tree(
        tmp_path,
        {
            **TINY_HYPERPARAMETERS,
            "text_column": "text",
            "text_pair_column": "second",
            "label_column": "tags",
            "max_steps": "12",
            "eval_steps": "4",
            "gradient_accumulation_steps": "2",
            "lr_scheduler": "cosine",
            "precision": "bf16",
            "early_stopping_patience": "5",
        },
        {"train": rows, "model": tiny_gpt2_base},
        channel_format="jsonl",
    )
    result = run_train(base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Training for 12 steps" in result.stdout
    assert len(re.findall(r"eval_accuracy=", result.stdout)) == 3  # steps 4, 8, 12
    meta = json.loads((base / "model" / "textclf.json").read_text())
    assert meta["multi_label"] and meta["text_pair"] and meta["model_type"] == "gpt2"
    config = json.loads((base / "model" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["pad_token_id"] is not None  # GPT-2 had none; training gave it one
    assert "news" in config["label2id"]


def test_early_stopping_stops_when_nothing_improves(tmp_path, tiny_bert_base):
    base = make_ml_tree(
        tmp_path,
        {
            **TINY_HYPERPARAMETERS,
            "learning_rate": "0",
            "eval_steps": "2",
            "early_stopping_patience": "2",
            "epochs": "5",
        },
        {"train": make_rows(200), "model": tiny_bert_base},
    )
    result = run_train(base)
    assert result.returncode == 0, result.stderr
    assert "Early stopping at step 6" in result.stdout


def test_validation_and_test_labels_unseen_in_training_are_skipped(tmp_path, tiny_bert_base):
    rows = make_rows(120)
    base = make_ml_tree(
        tmp_path,
        {**TINY_HYPERPARAMETERS, "max_steps": "3"},
        {"train": rows, "validation": [*rows[:20], {"text": "odd one", "label": "unseen"}], "model": tiny_bert_base},
    )
    result = run_train(base)
    assert result.returncode == 0, result.stderr
    assert "1 rows have labels not seen in training" in result.stderr
    assert "20 validation texts" in result.stdout


def test_help_lists_hyperparameters():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(REPO / "train"), "--help"], capture_output=True, text=True).stdout
    assert "model_name_or_path" in out and "checkpoint_steps" in out


def test_readme_lists_every_hyperparameter():
    from textclf.training.hyperparameters import describe

    readme = (REPO / "README.md").read_text()
    for name, _, _ in describe():
        assert f"`{name}`" in readme, name

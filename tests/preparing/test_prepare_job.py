"""`prepare` as a processing job runs it: a subprocess over a hand-made /opt/ml/processing tree, with planted
duplicates, near-duplicates, empty rows, rare labels, gzip and mixed formats; the report's counts checked exactly."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from harness import exit_message, make_ml_tree, make_processing_tree, run_prepare, run_train
from sample_data import make_rows
from textclf.preparing.dedup import normalise
from tiny_models import TINY_HYPERPARAMETERS

SPLITS = ("train", "validation", "test")


def _csv_gz(rows: list[dict]) -> bytes:
    text = io.StringIO()
    text.write("text,label\n")
    for row in rows:
        text.write('"{}",{}\n'.format(row["text"].replace('"', '""'), row["label"]))
    return gzip.compress(text.getvalue().encode())


def _read_split(base: Path, name: str) -> list[dict]:
    path = base / "processing" / "output" / name / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _report(base: Path) -> dict:
    return json.loads((base / "processing" / "output" / "report" / "report.json").read_text())


def _output(result) -> str:
    return f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture
def raw_tree(tmp_path) -> tuple[Path, list[dict]]:
    """One unsplit input in three formats: 40 rows as gzipped CSV, 8 as a JSON array, and a JSON Lines file of
    planted trouble: 2 exact duplicates, 2 near-duplicates (one with another label), an empty text, a row without
    a label, and a label with only 2 rows. A Parquet file beside them is not read."""
    base_rows, more_rows = make_rows(40, seed=0), make_rows(8, seed=1)
    assert len({normalise(r["text"]) for r in base_rows + more_rows}) == 48  # no accidental duplicates
    planted = [
        base_rows[0],
        base_rows[5],
        {"text": "  " + base_rows[1]["text"].upper().replace(" ", "   ").rstrip(".") + "!! ", "label": "sport"},
        {"text": base_rows[2]["text"].lower().replace(".", ""), "label": "not-" + base_rows[2]["label"]},
        {"text": "   ", "label": "sport"},
        {"text": "a text without a label", "label": None},
        {"text": "Obituary of a famous coach.", "label": "obituary"},
        {"text": "Obituary of a retired banker.", "label": "obituary"},
    ]
    base = make_processing_tree(
        tmp_path / "ml",
        {
            "raw": {
                "news.csv.gz": _csv_gz(base_rows),
                "more.json": json.dumps(more_rows),
                "planted.jsonl": "".join(json.dumps(row) + "\n" for row in planted),
                "export.parquet": b"PAR1 not read",
            }
        },
    )
    return base, base_rows + more_rows


def test_unsplit_input_is_deduplicated_and_split_with_exact_counts(raw_tree, tiny_bert_base):
    base, clean_rows = raw_tree
    result = run_prepare(base, "--rare-labels", "drop", "--tokenizer-dir", str(tiny_bert_base))
    assert result.returncode == 0, _output(result)
    report = _report(base)
    assert report["files"] == {"raw/more.json": 8, "raw/news.csv.gz": 40, "raw/planted.jsonl": 8}
    assert report["ignored_files"] == ["raw/export.parquet"]
    assert report["rows_read"] == 56
    assert report["rows_dropped"] == {"empty text": 1, "missing label": 1}
    assert report["duplicates"] == {"exact": 2, "normalised": 2, "label_conflicts": 1, "removed": 4}
    assert report["rare_labels"] == {"labels": {"obituary": 2}, "action": "drop", "removed": 2}
    # 12 rows per topic: one to validation, one to test, ten to train.
    per_label = {"finance": 10, "sport": 10, "tech": 10, "weather": 10}
    assert report["splits"]["train"] == {"rows": 40, "labels": per_label}
    for name in ("validation", "test"):
        assert report["splits"][name] == {"rows": 4, "labels": dict.fromkeys(per_label, 1)}
    # What was written is exactly the clean rows, each once, and no text is in two splits.
    written = {name: _read_split(base, name) for name in SPLITS}
    keys = {name: {normalise(row["text"]) for row in rows} for name, rows in written.items()}
    assert sum(len(rows) for rows in written.values()) == 48
    assert set().union(*keys.values()) == {normalise(r["text"]) for r in clean_rows}
    assert not (keys["train"] & keys["validation"] or keys["train"] & keys["test"] or keys["validation"] & keys["test"])
    # Every duplicate set aside is listed with where it came from and what it repeats.
    duplicates_file = base / "processing" / "output" / "report" / "duplicates.jsonl"
    listed = [json.loads(line) for line in duplicates_file.read_text().splitlines()]
    assert sorted((d["source"], d["kind"], d["label_conflict"]) for d in listed) == [
        ("raw/planted.jsonl:1", "exact", False),
        ("raw/planted.jsonl:2", "exact", False),
        ("raw/planted.jsonl:3", "normalised", False),
        ("raw/planted.jsonl:4", "normalised", True),
    ]
    assert {d["duplicate_of"] for d in listed} == {"raw/news.csv.gz:2", "raw/news.csv.gz:7", "raw/news.csv.gz:3",
                                                   "raw/news.csv.gz:4"}  # fmt: skip
    lengths = report["token_lengths"]
    assert lengths["texts"] == 48 and lengths["model_max_length"] == 128
    chosen = lengths["recommended_max_length"]
    assert chosen % 16 == 0 and chosen >= lengths["percentiles"]["p95"]
    assert lengths["truncated_share"][str(chosen)] <= 0.05
    assert report["train_hyperparameters"]["max_length"] == str(lengths["recommended_max_length"])
    for plot in ("label_distribution.png", "token_lengths.png"):
        assert (base / "processing/output/report" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Recommended max_length" in result.stdout


def test_the_same_seed_gives_the_same_split(raw_tree, tmp_path):
    base, _ = raw_tree
    first = run_prepare(base, "--rare-labels", "train", "--seed", "7")
    assert first.returncode == 0, _output(first)
    before = {name: _read_split(base, name) for name in SPLITS}
    assert _report(base)["splits"]["train"]["labels"]["obituary"] == 2  # kept in train only
    again = run_prepare(base, "--rare-labels", "train", "--seed", "7")
    assert again.returncode == 0 and {name: _read_split(base, name) for name in SPLITS} == before
    other = run_prepare(base, "--rare-labels", "train", "--seed", "8")
    assert other.returncode == 0 and _read_split(base, "test") != before["test"]


def test_rare_labels_fail_the_job_by_default_with_a_message(raw_tree):
    base, _ = raw_tree
    result = run_prepare(base)
    assert result.returncode == 1
    message = exit_message(base)
    assert "'obituary' (2)" in message and "--rare-labels train" in message
    assert not (base / "processing" / "output" / "train").exists()


def _presplit_tree(tmp_path: Path) -> Path:
    """Inputs that come split, with leaks: test repeats 2 train texts exactly and 1 after normalising, and 1
    validation text; validation repeats 1 train text. Test also holds one duplicate of its own."""
    train, validation, test = make_rows(40, seed=0), make_rows(8, seed=1), make_rows(8, seed=2)
    test += [train[0], train[1], {"text": train[2]["text"].upper(), "label": train[2]["label"]}, validation[0], test[0]]
    validation += [train[3]]
    return make_processing_tree(
        tmp_path / "ml",
        {"train": {"train.csv": train}, "validation": {"part-0.jsonl": validation}, "test": {"test.csv": test}},
    )


def test_a_given_split_has_its_cross_split_duplicates_reported_and_kept_by_default(tmp_path):
    base = _presplit_tree(tmp_path)
    result = run_prepare(base)
    assert result.returncode == 0, _output(result)
    report = _report(base)
    assert report["mode"] == "checked the given split"
    assert report["duplicates"] == {"exact": 1, "normalised": 0, "label_conflicts": 0, "removed": 1}
    assert report["cross_split_duplicates"] == {
        "exact": 4,
        "normalised": 1,
        "label_conflicts": 0,
        "between": {"train/test": 3, "train/validation": 1, "validation/test": 1},
        "action": "warn",
        "removed": 0,
    }
    assert {name: info["rows"] for name, info in report["splits"].items()} == {"train": 40, "validation": 9, "test": 12}


def test_a_given_split_loses_its_leaked_rows_from_the_later_split_on_request(tmp_path):
    base = _presplit_tree(tmp_path)
    result = run_prepare(base, "--cross-split-duplicates", "drop")
    assert result.returncode == 0, _output(result)
    report = _report(base)
    assert report["cross_split_duplicates"]["removed"] == 5
    assert {name: info["rows"] for name, info in report["splits"].items()} == {"train": 40, "validation": 8, "test": 8}
    keys = {name: {normalise(row["text"]) for row in _read_split(base, name)} for name in SPLITS}
    assert not (keys["train"] & keys["validation"] or keys["train"] & keys["test"] or keys["validation"] & keys["test"])


def test_a_leaking_split_can_fail_the_job(tmp_path):
    base = _presplit_tree(tmp_path)
    result = run_prepare(base, "--cross-split-duplicates", "fail")
    assert result.returncode == 1
    assert exit_message(base).startswith("5 row(s) of a later split repeat a text of an earlier one")


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        ({"data.csv": [{"body": "x", "label": "a"}]}, [], "has no column 'text'"),
        ({"data.parquet": b"PAR1"}, [], "data.parquet cannot be read by this image"),
        ({"data.csv": [{"text": "x", "label": "a"}]}, ["--test-share", "2"], "2 is not a share between 0 and 1"),
        ({"data.csv": [{"text": "x", "label": "a"}]}, ["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_fails_with_the_cause_and_the_remedy_in_the_message_file(tmp_path, files, args, expected):
    base = make_processing_tree(tmp_path / "ml", {"raw": files})
    result = run_prepare(base, *args)
    assert result.returncode == 1, _output(result)
    message = exit_message(base)
    assert expected in message, message
    assert expected in result.stderr  # the log says it too


def test_inputs_and_outputs_named_by_the_processing_job_config_are_used(tmp_path):
    base = make_processing_tree(tmp_path / "ml", {"corpus": {"rows.csv": make_rows(40)}})
    config = base / "config"
    config.mkdir()
    job = {
        "ProcessingJobName": "prep-1",
        "ProcessingInputs": [{"InputName": "corpus", "S3Input": {"LocalPath": "/opt/ml/processing/input/corpus"}}],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": name, "S3Output": {"LocalPath": f"/opt/ml/processing/{name}-channel"}}
            for name in ("train", "validation", "test", "report")
        ]},
    }  # fmt: skip
    (config / "processingjobconfig.json").write_text(json.dumps(job))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    result = run_prepare(base)
    assert result.returncode == 0, _output(result)
    assert len((base / "processing/train-channel/train.jsonl").read_text().splitlines()) == 32
    assert (base / "processing/report-channel/report.json").exists()
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}))
    refused = run_prepare(base)
    assert refused.returncode == 1 and "InstanceCount to 1" in exit_message(base)


def test_an_unnamed_input_mounted_at_the_model_path_is_the_tokenizer_not_data(tmp_path, tiny_bert_base):
    # The SageMaker Python SDK names inputs a user left unnamed input-1, input-2, ...: the path decides.
    base = make_processing_tree(tmp_path / "ml", {"raw": {"rows.csv": make_rows(40)}, "model": tiny_bert_base})
    (base / "config").mkdir()
    job = {"ProcessingJobName": "prep-2", "ProcessingInputs": [
        {"InputName": f"input-{number}", "S3Input": {"LocalPath": f"/opt/ml/processing/input/{name}"}}
        for number, name in ((1, "raw"), (2, "model"))
    ]}  # fmt: skip
    (base / "config" / "processingjobconfig.json").write_text(json.dumps(job))
    result = run_prepare(base)
    assert result.returncode == 0, _output(result)
    report = _report(base)
    assert report["rows_read"] == 40 and list(report["inputs"]) == ["input-1"], report
    assert report["token_lengths"]["tokenizer"], report["token_lengths"]


def test_the_channels_it_writes_train_with_train_unchanged(tmp_path, tiny_bert_base):
    base = make_processing_tree(tmp_path / "prep", {"raw": {"rows.csv": make_rows(200)}, "model": tiny_bert_base})
    result = run_prepare(base)
    assert result.returncode == 0, _output(result)
    report = _report(base)
    out = base / "processing" / "output"
    channels = {name: out / name for name in SPLITS} | {"model": tiny_bert_base}
    ml = make_ml_tree(tmp_path / "train", {**TINY_HYPERPARAMETERS, **report["train_hyperparameters"]}, channels)
    trained = run_train(ml)
    assert trained.returncode == 0, _output(trained)
    # train read the three channels as prepare wrote them, and cut texts where the report said.
    assert "Final evaluation of the kept model on 20 validation and 20 test texts." in trained.stdout
    assert json.loads((ml / "model" / "textclf.json").read_text())["max_length"] == int(
        report["train_hyperparameters"]["max_length"]
    )


def test_text_pairs_and_multi_label_rows_keep_their_shape(tmp_path):
    """A text repeated with another second text is not a duplicate; the same pair is. Label lists stay lists."""
    rows = [
        {"question": f"question {i % 6}", "answer": r["text"], "tags": json.dumps([r["label"], "news"])}
        for i, r in enumerate(make_rows(36))
    ]
    rows.append({**rows[0], "answer": rows[0]["answer"].lower()})
    base = make_processing_tree(tmp_path / "ml", {"raw": {"pairs.csv": rows}})
    args = ["--text-column", "question", "--text-pair-column", "answer", "--label-column", "tags"]
    result = run_prepare(base, *args)
    assert result.returncode == 0, _output(result)
    report = _report(base)
    assert report["duplicates"] == {"exact": 0, "normalised": 1, "label_conflicts": 0, "removed": 1}
    assert report["splits"]["train"]["labels"]["news"] == report["splits"]["train"]["rows"] == 28
    first = _read_split(base, "train")[0]
    assert set(first) == {"question", "answer", "tags"} and isinstance(first["tags"], list)
    assert report["train_hyperparameters"] == {
        "text_column": "question", "text_pair_column": "answer", "label_column": "tags"
    }  # fmt: skip

"""Faults of the user's files and of the job's volume, through a real `train`: exit 1, and a failure file that
names the file (and line), says it is the data or the volume, and what to change; never "Internal error"."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest
from harness import failure_text, make_ml_tree, run_train
from sample_data import make_rows
from textclf.training.readers import CSV_FIELD_LIMIT
from tiny_models import TINY_HYPERPARAMETERS


def _csv_bytes(rows: list[dict]) -> bytes:
    return ("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows)).encode()


def _jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _tree(tmp_path: Path, model: Path, files: dict[str, bytes], **hyper: str) -> Path:
    base = make_ml_tree(tmp_path, {**TINY_HYPERPARAMETERS, "max_steps": "2", **hyper}, {"model": model})
    train_dir = base / "input" / "data" / "train"
    train_dir.mkdir(parents=True)
    for name, content in files.items():
        (train_dir / name).write_bytes(content)
    return base


def _assert_user_fault(base: Path, expected: list[str]) -> str:
    result = run_train(base)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    failure = failure_text(base)
    for fragment in expected:
        assert fragment in failure[:1024], f"{fragment!r} not in {failure!r}"
    assert "Internal error" not in failure and "Traceback" not in failure
    return failure


def _latin1(rows):
    return _csv_bytes(rows[:30]) + "Un café au lait,sport\n".encode("latin-1") + _csv_bytes(rows[30:])[11:]


def _truncated_gzip(rows):
    whole = gzip.compress(_jsonl_bytes(rows * 20))
    return whole[: len(whole) // 2]


CASES = {
    "latin-1 csv": (
        lambda rows: {"train.csv": _latin1(rows)},
        ["train.csv line 32 is not UTF-8 text (byte 0xe9 at byte 7 of the line)", "Latin-1", "Save it as UTF-8"],
    ),
    "binary file named .csv": (
        lambda rows: {"good.csv": _csv_bytes(rows), "photo.csv": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8},
        ["photo.csv line 1 is not UTF-8 text", "not a text file", "remove it from the channel"],
    ),
    "truncated gzip": (
        lambda rows: {"train.jsonl.gz": _truncated_gzip(rows)},
        ["train.jsonl.gz is not a complete gzip file", "cut short", "upload it again"],
    ),
    "plain text named .gz": (
        lambda rows: {"train.jsonl.gz": _jsonl_bytes(rows)},
        ["train.jsonl.gz is not a complete gzip file", "not gzip-compressed", "remove the .gz ending"],
    ),
    "csv quote never closed": (
        lambda rows: {"train.csv": _csv_bytes(rows) + b'"an open quote,sport\n' + b"words " * (CSV_FIELD_LIMIT // 5)},
        [f"train.csv line 42 has a field longer than {CSV_FIELD_LIMIT:,} characters", "Close the quote"],
    ),
    "label with a fraction": (
        lambda rows: {"train.jsonl": _jsonl_bytes([*rows[:5], {"text": "a score", "label": 0.75}, *rows[5:]])},
        ["train.jsonl line 6 has the label 0.75, a number with a fraction", "label_column"],
    ),
    "booleans mixed with names": (
        lambda rows: {"train.jsonl": _jsonl_bytes([*rows, {"text": "a flag", "label": True}])},
        ["mixes true/false labels (train.jsonl line 41) with string labels (train.jsonl line 1)"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_faulty_file_is_named_with_what_to_change(case, tmp_path, tiny_bert_base):
    files, expected = CASES[case]
    _assert_user_fault(_tree(tmp_path, tiny_bert_base, files(make_rows(40))), expected)


@pytest.fixture
def small_volume():
    """Mounts a tmpfs of a given size at a path (root only); unmounted after the test whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("a full volume is simulated with a small tmpfs, which only root can mount")
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.parametrize(("directory", "what"), [("checkpoints", "a checkpoint (step 2)"), ("model", "the model")])
def test_a_full_volume_names_the_directory_and_volume_size(directory, what, tmp_path, tiny_bert_base, small_volume):
    base = _tree(tmp_path, tiny_bert_base, {"train.csv": _csv_bytes(make_rows(40))})
    full = small_volume(base / directory, "96k")  # room for the tokenizer, not for the weights
    failure = _assert_user_fault(base, [f"The volume is full: writing {what}", str(full), "VolumeSizeInGB"])
    assert "No space left on device" in failure or "RuntimeError" in failure
    if directory == "checkpoints":
        assert not list(full.iterdir()), "the half-written checkpoint should have been removed"

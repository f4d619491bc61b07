"""Very long texts: read row by row, cut to what max_length can use (and counted in the log), in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from harness import TRAIN, make_ml_tree, run_train, train_env
from sample_data import TOPICS, make_rows, write_rows
from textclf.training.data import read_channel, text_char_limit
from textclf.training.hyperparameters import Hyperparameters
from textclf.windows import LongTextPolicy, text_windows
from tiny_models import TINY_HYPERPARAMETERS
from transformers import AutoTokenizer

MAX_LENGTH = 64


def _words(characters: int) -> str:
    words = " ".join(TOPICS["sport"]) + " "
    return (words * (characters // len(words) + 1))[:characters].strip()


def test_long_texts_are_cut_to_the_limit_and_counted(tmp_path, caplog):
    limit = text_char_limit(MAX_LENGTH)
    rows = [
        {"text": _words(3 * limit), "pair": "short", "label": "a"},
        {"text": "short", "pair": _words(limit + 10), "label": "b"},
        {"text": _words(limit), "pair": "fits exactly", "label": "a"},
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = read_channel(tmp_path, "text", "label", "pair", MAX_LENGTH)
    assert [len(e.text) for e in data.examples] == [limit, 5, len(rows[2]["text"])]
    assert data.examples[1].text_pair == rows[1]["pair"][:limit]
    assert data.examples[0].text == rows[0]["text"][:limit]
    assert data.cut == 2
    assert f"cut 2 text(s) longer than {limit} characters" in caplog.text


def test_a_cut_text_tokenises_as_the_whole_text(tiny_bert_base, tmp_path):
    whole = _words(50 * text_char_limit(MAX_LENGTH))
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": whole, "label": "a"}) + "\n")
    cut = read_channel(tmp_path, "text", "label", None, MAX_LENGTH).examples[0].text
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_base)
    assert len(cut) < len(whole)
    assert (
        tokenizer(cut, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        == (tokenizer(whole, truncation=True, max_length=MAX_LENGTH)["input_ids"])
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_train_reads_a_two_megabyte_text(fmt, tmp_path, tiny_bert_base):
    rows = [*make_rows(40), {"text": _words(2_000_000), "label": "sport"}]
    base = make_ml_tree(tmp_path, {**TINY_HYPERPARAMETERS, "max_steps": "2"}, {"model": tiny_bert_base})
    write_rows(base / "input" / "data" / "train" / f"train.{fmt}", rows, fmt)
    result = run_train(base)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    limit = text_char_limit(int(TINY_HYPERPARAMETERS["max_length"]), Hyperparameters().long_text_policy)
    assert f"Channel 'train': cut 1 text(s) longer than {limit} characters" in result.stderr


# Runs its arguments as a child and prints the child's peak resident memory (KiB): the wrapper has no other child.
PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def test_a_twenty_megabyte_line_costs_little_memory(tmp_path, tiny_bert_base):
    # Tokenising a whole 20 MB text took about 2 GB more than the job needs without it (7 GB at 50 MB).
    rows = [*make_rows(40), {"text": _words(20_000_000), "label": "sport"}]
    base = make_ml_tree(tmp_path, {**TINY_HYPERPARAMETERS, "max_steps": "2"}, {"model": tiny_bert_base})
    write_rows(base / "input" / "data" / "train" / "train.jsonl", rows, "jsonl")
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, sys.executable, str(TRAIN)],
        env=train_env(base),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    peak_mib = int(result.stdout.split()[-1]) / 1024
    assert peak_mib < 1500, f"peak RSS {peak_mib:.0f} MiB"


@pytest.mark.parametrize("policy", ["head_tail", "chunks"])
def test_a_cut_text_gives_the_windows_of_the_whole_text(policy, tiny_bert_base, tmp_path):
    """What is kept of a very long text (head_tail: its start and its end) reads as the whole text would."""
    topics = ["sport", "weather", "finance", "tech"]
    whole = " ".join(" ".join(TOPICS[topics[i % 4]]) for i in range(20_000))  # ~1 MB, words varying along it
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": whole, "label": "a"}) + "\n")
    chosen = LongTextPolicy(policy, max_chunks=4)
    data = read_channel(tmp_path, "text", "label", None, MAX_LENGTH, chosen)
    assert data.cut == 1 and len(data.examples[0].text) < len(whole)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_base)
    kept = text_windows(tokenizer, [data.examples[0].text], MAX_LENGTH, chosen)
    assert kept == text_windows(tokenizer, [whole], MAX_LENGTH, chosen)

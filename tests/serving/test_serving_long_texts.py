"""Long-text policies end to end: `train` a chunked (and a head_tail) model on long texts, `serve` it, and check its
answers against the windows computed here by hand and forwarded one by one through plain transformers."""

from __future__ import annotations

import json
import math
import random
import shutil

import pytest
import torch
from harness import Server, make_ml_tree, run_train
from sample_data import TOPICS, make_text
from textclf.artifact import ModelMetadata
from tiny_models import TINY_HYPERPARAMETERS
from transformers import AutoModelForSequenceClassification, AutoTokenizer

MAX_LENGTH = int(TINY_HYPERPARAMETERS["max_length"])
STRIDE, MAX_CHUNKS = 40, 4
REQUEST_TOKENS = 2000  # TEXTCLF_MAX_REQUEST_TOKENS of the chunked servers: 7 texts of four full windows fit
# The served scores are compared with float32 references computed here: the servers compute in float32 too (on a
# CPU with bf16 instructions they would pick bfloat16 by default, a precision question these tests do not ask).
EXACT = {"TEXTCLF_DTYPE": "float32"}


def long_rows(count: int, seed: int) -> list[dict]:
    """Texts of 3 to 30 generated sentences (about 30 to 300 tokens): most of their topic, some of another."""
    rng = random.Random(seed)
    topics = sorted(TOPICS)
    rows = []
    for i in range(count):
        topic = topics[i % len(topics)]
        sentences = [
            make_text(rng, topic if rng.random() < 0.7 else rng.choice(topics)) for _ in range(rng.randint(3, 30))
        ]
        rows.append({"text": " ".join(sentences), "label": topic})
    return rows


def _train(tmp_path_factory, name: str, base_model, **hyper: str):
    base = make_ml_tree(
        tmp_path_factory.mktemp(name),
        {**TINY_HYPERPARAMETERS, "precision": "fp32", **hyper},  # evaluated as the float32 servers answer
        {"train": long_rows(120, seed=1), "validation": long_rows(40, seed=2), "model": base_model},
        channel_format="jsonl",
    )
    result = run_train(base)
    assert result.returncode == 0, f"train failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return base


@pytest.fixture(scope="module", params=["bert", "gpt2"])
def chunked(request, tmp_path_factory, tiny_bert_base, tiny_gpt2_base):
    """(training job directory, server) of a chunked model: BERT, then GPT-2 (left to right, last-token pooling)."""
    base_model = tiny_bert_base if request.param == "bert" else tiny_gpt2_base
    base = _train(
        tmp_path_factory,
        f"chunks-{request.param}",
        base_model,
        long_text="chunks",
        chunk_stride=str(STRIDE),
        max_chunks=str(MAX_CHUNKS),
    )
    server = Server(base / "model", TEXTCLF_MAX_REQUEST_TOKENS=str(REQUEST_TOKENS), **EXACT).start()
    try:
        yield base, server.wait_ready()
    finally:
        server.stop()


def _windows_by_hand(tokenizer, text: str) -> list[list[int]]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    full = tokenizer("rain")["input_ids"]
    bare = tokenizer("rain", add_special_tokens=False)["input_ids"]
    prefix, suffix = (full[:1], full[-1:]) if len(full) == len(bare) + 2 else ([], [])  # BERT / GPT-2
    content = MAX_LENGTH - len(prefix) - len(suffix)
    if len(ids) <= content:
        starts = [0]
    else:
        starts = [*range(0, len(ids) - content, STRIDE), len(ids) - content][:MAX_CHUNKS]
    return [prefix + ids[start : start + content] + suffix for start in starts]


def _mean_probabilities(model, windows: list[list[int]]) -> list[float]:
    with torch.no_grad():
        rows = [model(input_ids=torch.tensor([w])).logits[0].softmax(-1) for w in windows]
    return (sum(rows) / len(rows)).tolist()


def _scores(answer: list[dict]) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in answer}


def test_a_served_chunked_model_answers_the_mean_of_its_windows(chunked):
    base, server = chunked
    model_dir = base / "model"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    texts = [row["text"] for row in long_rows(8, seed=3)]
    response = server.post({"inputs": texts, "parameters": {"top_k": None}})
    assert response.status_code == 200, response.text
    answers = response.json()
    assert len(answers) == len(texts)  # one answer per text, however many windows
    counts = [len(_windows_by_hand(tokenizer, text)) for text in texts]
    assert max(counts) == MAX_CHUNKS and min(counts) == 1, counts  # capped, and one-window texts among them
    for text, answer in zip(texts, answers, strict=True):
        expected = _mean_probabilities(model, _windows_by_hand(tokenizer, text))
        labels = [model.config.id2label[i] for i in range(len(expected))]
        assert _scores(answer) == pytest.approx(dict(zip(labels, expected, strict=True)), abs=1e-5)


def test_validation_metrics_are_per_text_as_serve_answers(chunked):
    base, server = chunked
    rows = long_rows(40, seed=2)
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    answers = []
    for start in range(0, len(rows), 5):  # under the request token bound
        response = server.post({"inputs": [row["text"] for row in rows[start : start + 5]]})
        assert response.status_code == 200, response.text
        answers += response.json()
    right = sum(answer["label"] == row["label"] for answer, row in zip(answers, rows, strict=True))
    assert metrics["validation"]["accuracy"] == pytest.approx(right / len(rows))


def test_the_request_token_bound_counts_every_window(chunked):
    _, server = chunked
    text = " ".join(["rain forecast frost goal humid keeper league robot"] * 60)  # far over four windows
    assert server.post({"inputs": [text] * 7}).status_code == 200  # 7 texts x 4 windows x 64 tokens = 1792
    refused = server.post({"inputs": [text] * 8})  # 2048 tokens: over, though 8 truncated texts (512) fit
    assert refused.status_code == 413, refused.text
    assert "8 texts (32 windows) hold 2048 tokens" in refused.text


def test_truncation_false_refuses_what_the_windows_would_leave_out(chunked):
    base, server = chunked
    tokenizer = AutoTokenizer.from_pretrained(base / "model")
    words = "rain forecast frost goal humid keeper league robot".split()
    # The most content tokens four windows read: 3 strides and a window's content.
    specials = len(tokenizer("rain")["input_ids"]) - 1
    most = 3 * STRIDE + MAX_LENGTH - specials
    fits = " ".join(words[i % 8] for i in range(most))
    over = " ".join(words[i % 8] for i in range(most + 1))
    assert len(tokenizer(fits, add_special_tokens=False)["input_ids"]) == most
    ok = server.post({"inputs": fits, "parameters": {"truncation": False}})
    assert ok.status_code == 200, ok.text
    refused = server.post({"inputs": over, "parameters": {"truncation": False}})
    assert refused.status_code == 422, refused.text
    assert "long_text=chunks" in refused.text and "truncation to true" in refused.text
    assert server.post({"inputs": over}).status_code == 200  # truncation on (the default): its first four windows


def test_a_one_window_text_answers_exactly_as_the_truncate_model(chunked, tmp_path):
    base, server = chunked
    as_truncate = tmp_path / "model"
    shutil.copytree(base / "model", as_truncate)
    meta = json.loads((as_truncate / "textclf.json").read_text())
    assert meta["long_text"] == "chunks" and meta["format_version"] == 2  # older images refuse, not truncate
    (as_truncate / "textclf.json").write_text(json.dumps({**meta, "long_text": "truncate"}))
    short = [row["text"] for row in long_rows(12, seed=4) if len(row["text"].split()) < 25][:4]
    assert short
    truncating = Server(as_truncate, **EXACT).start().wait_ready()
    try:
        for text in short:  # one text per request: the same batch of one on both servers
            body = {"inputs": text, "parameters": {"top_k": None}}
            assert server.post(body).json() == truncating.post(body).json()
        over = {"inputs": " ".join(["rain"] * 100), "parameters": {"truncation": False}}
        assert "the model's limit is 64 tokens" in truncating.post(over).text  # truncate keeps its meaning
        long_text = long_rows(40, seed=5)[-1]["text"]
        assert (
            server.post({"inputs": long_text}).json()
            != truncating.post({"inputs": long_text, "parameters": {"top_k": None}}).json()
        )
    finally:
        truncating.stop()


def test_a_truncate_model_is_written_as_format_version_1(tmp_path):
    ModelMetadata(labels=["a", "b"], max_length=64, long_text="truncate").write(tmp_path)
    meta = json.loads((tmp_path / "textclf.json").read_text())
    assert meta["format_version"] == 1  # older images still serve it: they read it the same way


def test_head_tail_serves_the_first_and_last_tokens(tmp_path_factory, tiny_bert_base):
    base = _train(tmp_path_factory, "head-tail", tiny_bert_base, long_text="head_tail")
    model_dir = base / "model"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    text = long_rows(20, seed=6)[-1]["text"]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 2 * MAX_LENGTH
    content = MAX_LENGTH - 2
    head = content // 4
    window = [tokenizer.cls_token_id, *ids[:head], *ids[len(ids) - (content - head) :], tokenizer.sep_token_id]
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([window])).logits[0].softmax(-1).tolist()
    server = Server(model_dir, **EXACT).start().wait_ready()
    try:
        answer = server.post({"inputs": text, "parameters": {"top_k": None}}).json()
        assert _scores(answer) == pytest.approx({model.config.id2label[i]: p for i, p in enumerate(expected)}, abs=1e-5)
        refused = server.post({"inputs": text, "parameters": {"truncation": False}})
        assert refused.status_code == 422 and "long_text=head_tail" in refused.text
    finally:
        server.stop()
    assert not math.isnan(json.loads((base / "output" / "data" / "metrics.json").read_text())["validation"]["loss"])

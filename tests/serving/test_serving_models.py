"""GPT-2 and multi-label models from `train`, served for real."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import requests
from sample_data import make_rows
from serve_support import SAMPLE

ALL_LOGITS = {"top_k": None, "function_to_apply": "none"}
TOPICS = {"finance", "sport", "tech", "weather"}


def scores(entries: list[dict]) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in entries}


def test_gpt2_answers_with_label_names_and_batches_match_single_texts(gpt2_server):
    # GPT-2 pools the last real token: padding a short text beside a long one must not change its answer.
    texts = [row["text"] for row in make_rows(24, seed=9)] + [SAMPLE["tech"] * 3, "rain"]
    alone = [scores(gpt2_server.post({"inputs": [t], "parameters": ALL_LOGITS}).json()[0]) for t in texts]
    together = [scores(e) for e in gpt2_server.post({"inputs": texts, "parameters": ALL_LOGITS}).json()]
    for a, b in zip(alone, together, strict=True):
        assert a.keys() == TOPICS
        assert all(abs(a[label] - b[label]) < 1e-4 for label in a), (a, b)

    def client(text: str) -> dict[str, float]:
        response = requests.post(
            f"{gpt2_server.url}/invocations", json={"inputs": [text], "parameters": ALL_LOGITS}, timeout=60
        )
        return scores(response.json()[0])

    with ThreadPoolExecutor(12) as pool:
        concurrent = list(pool.map(client, texts))
    for a, b in zip(alone, concurrent, strict=True):
        assert all(abs(a[label] - b[label]) < 1e-4 for label in a)
    best = gpt2_server.post({"inputs": SAMPLE["sport"]}).json()[0]
    assert best["label"] in TOPICS and 0 < best["score"] <= 1


def test_multilabel_answers_every_label_over_the_threshold(multilabel_server):
    texts = list(SAMPLE.values())
    logits = [scores(e) for e in multilabel_server.post({"inputs": texts, "parameters": ALL_LOGITS}).json()]
    assert all(entry.keys() == TOPICS | {"news"} for entry in logits)
    default = multilabel_server.post({"inputs": texts}).json()
    for raw, answer in zip(logits, default, strict=True):
        assert isinstance(answer, list)  # multi-label: a list per text, best first, possibly empty
        expected = {label for label, logit in raw.items() if 1 / (1 + math.exp(-logit)) >= 0.5}
        assert {entry["label"] for entry in answer} == expected
        assert all(0.5 <= entry["score"] <= 1 for entry in answer)
        assert [e["score"] for e in answer] == sorted((e["score"] for e in answer), reverse=True)
    every = multilabel_server.post({"inputs": texts[0], "parameters": {"top_k": None}}).json()
    assert len(every) == 5 and sum(e["score"] for e in every) > 1.01  # sigmoid scores, not a distribution
    top1 = multilabel_server.post({"inputs": [texts[0]], "parameters": {"top_k": 1}}).json()
    assert len(top1[0]) == 1

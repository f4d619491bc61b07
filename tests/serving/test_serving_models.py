"""GPT-2 and multi-label models from `train`, served for real."""

from __future__ import annotations

import csv
import io
import json
import math
from concurrent.futures import ThreadPoolExecutor

import requests
from sample_data import SAMPLE_TEXTS, make_rows

ALL_LOGITS = {"top_k": None, "function_to_apply": "none"}
TOPICS = {"finance", "sport", "tech", "weather"}


def scores(entries: list[dict]) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in entries}


def test_gpt2_answers_with_label_names_and_batches_match_single_texts(gpt2_server):
    # GPT-2 pools the last real token: padding a short text beside a long one must not change its answer.
    texts = [row["text"] for row in make_rows(24, seed=9)] + [SAMPLE_TEXTS["tech"] * 3, "rain"]
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
    best = gpt2_server.post({"inputs": SAMPLE_TEXTS["sport"]}).json()[0]
    assert best["label"] in TOPICS and 0 < best["score"] <= 1


def test_multilabel_answers_every_label_over_the_threshold_saved_at_training(multilabel_server, multilabel_model_dir):
    assert json.loads((multilabel_model_dir / "textclf.json").read_text())["threshold"] == 0.4
    texts = list(SAMPLE_TEXTS.values()) + [row["text"] for row in make_rows(40, seed=21)]
    logits = [scores(e) for e in multilabel_server.post({"inputs": texts, "parameters": ALL_LOGITS}).json()]
    assert all(entry.keys() == TOPICS | {"news"} for entry in logits)
    default = multilabel_server.post({"inputs": texts}).json()
    between = 0  # labels scored in [0.4, 0.5): answered only because the saved threshold is used
    for raw, answer in zip(logits, default, strict=True):
        assert isinstance(answer, list)  # multi-label: a list per text, best first, possibly empty
        probabilities = {label: 1 / (1 + math.exp(-logit)) for label, logit in raw.items()}
        assert {entry["label"] for entry in answer} == {label for label, p in probabilities.items() if p >= 0.4}
        between += sum(0.4 <= p < 0.5 for p in probabilities.values())
        assert all(0.4 <= entry["score"] <= 1 for entry in answer)
        assert [e["score"] for e in answer] == sorted((e["score"] for e in answer), reverse=True)
    assert between > 0, "no score fell between 0.4 and 0.5: the test cannot tell the saved threshold from 0.5"
    # Every label with its own sigmoid score, not a softmax distribution (whose scores would sum to 1).
    every = multilabel_server.post({"inputs": texts[0], "parameters": {"top_k": None}}).json()
    alone = scores(multilabel_server.post({"inputs": texts[0], "parameters": ALL_LOGITS}).json())
    sigmoid = {label: 1 / (1 + math.exp(-logit)) for label, logit in alone.items()}
    assert {e["label"] for e in every} == sigmoid.keys()
    assert all(abs(e["score"] - sigmoid[e["label"]]) < 1e-6 for e in every), (every, sigmoid)
    top1 = multilabel_server.post({"inputs": [texts[0]], "parameters": {"top_k": 1}}).json()
    assert len(top1[0]) == 1


def reference_logits(model_dir, pairs: list[tuple[str, str]]) -> list[dict[str, float]]:
    """What transformers itself computes for each (text, text_pair), one at a time: no code of ours involved."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    answers = []
    with torch.no_grad():
        for text, pair in pairs:
            logits = model(**tokenizer(text, pair, return_tensors="pt")).logits[0].tolist()
            answers.append({model.config.id2label[i]: value for i, value in enumerate(logits)})
    return answers


def pair_inputs(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"text": text, "text_pair": pair} for text, pair in pairs]


def test_pair_model_reads_both_texts_in_every_format(pair_server, pair_model_dir):
    topics = sorted(SAMPLE_TEXTS)
    pairs = [(SAMPLE_TEXTS[a], SAMPLE_TEXTS[b]) for a in topics for b in topics if a != b]
    swapped = [(pair, text) for text, pair in pairs]
    forward, backward = reference_logits(pair_model_dir, pairs), reference_logits(pair_model_dir, swapped)
    # Both texts reach the model, in order, as one "[CLS] text [SEP] pair [SEP]" input.
    for order, reference in ((pairs, forward), (swapped, backward)):
        served = pair_server.post({"inputs": pair_inputs(order), "parameters": ALL_LOGITS}).json()
        for answer, expected in zip(map(scores, served), reference, strict=True):
            assert answer.keys() == TOPICS, answer
            assert all(abs(answer[k] - expected[k]) < 1e-4 for k in TOPICS), (answer, expected)
    # Swapping the texts changes the logits, so the comparison above could tell the orders apart.
    assert any(abs(a[k] - b[k]) > 1e-3 for a, b in zip(forward, backward, strict=True) for k in TOPICS)

    expected = pair_server.post({"inputs": pair_inputs(pairs)}).json()
    rows = io.StringIO()
    csv.writer(rows).writerows(pairs)
    bodies = {
        "application/jsonlines": "".join(json.dumps({"inputs": item}) + "\n" for item in pair_inputs(pairs)),
        "text/csv": "text,text_pair\n" + rows.getvalue(),  # a header row naming the columns
        "text/csv; no header": rows.getvalue(),  # a pair model reads two columns without a header too
    }
    for name, body in bodies.items():
        response = requests.post(
            f"{pair_server.url}/invocations",
            data=body.encode(),
            headers={"Content-Type": name.split(";")[0], "Accept": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, (name, response.text)
        answers = response.json()
        assert [a["label"] for a in answers] == [a["label"] for a in expected], name
        assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(answers, expected, strict=True)), name

    # One text alone means nothing to a pair model: refused with what to send, and the server goes on.
    single = requests.post(f"{pair_server.url}/invocations", json={"inputs": ["q", "a"]}, timeout=30)
    assert single.status_code == 422 and "trained on text pairs" in single.json()["error"], single.text
    assert pair_server.post({"inputs": pair_inputs(pairs)}).json() == expected

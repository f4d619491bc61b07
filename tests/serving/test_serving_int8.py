"""TEXTCLF_DTYPE=int8: linear layers quantised to 8 bits on CPU, served for real beside float32."""

from __future__ import annotations

import json
import re

import pytest
from harness import servers_side_by_side
from sample_data import SAMPLE_TEXTS, make_rows


@pytest.fixture(scope="module", params=["bert_model_dir", "gpt2_model_dir"])
def float32_and_int8(request):
    model_dir = request.getfixturevalue(request.param)  # GPT-2's layers are Conv1D, turned into linear ones
    with servers_side_by_side(model_dir, {"TEXTCLF_DTYPE": "float32"}, {"TEXTCLF_DTYPE": "int8"}) as servers:
        yield model_dir, servers


def test_int8_answers_like_float32_from_quantised_weights(float32_and_int8):
    model_dir, (exact, int8) = float32_and_int8
    assert " as int8:" in int8.log and " as float32:" in exact.log  # the worker says what it computes in
    # Every block's layers are quantised, GPT-2's Conv1D ones included, not only the classification head.
    quantised_layers = int(re.search(r"int8: (\d+) linear layers quantised", int8.log).group(1))
    config = json.loads((model_dir / "config.json").read_text())
    assert quantised_layers >= 4 * config.get("num_hidden_layers", config.get("n_layer", 0)) > 0
    texts = list(SAMPLE_TEXTS.values()) + [row["text"] for row in make_rows(30, seed=4)]
    reference, quantised = exact.probabilities(texts), int8.probabilities(texts)
    differences = [abs(a[label] - b[label]) for a, b in zip(reference, quantised, strict=True) for label in a]
    assert max(differences) > 0, "int8 answered exactly as float32: the weights were not quantised"
    assert max(differences) < 0.05, max(differences)
    # Labels stay, but for near-ties: int8's label is float32's, or one float32 scored within the int8 error.
    for a, b in zip(reference, quantised, strict=True):
        float_label, int8_label = max(a, key=a.get), max(b, key=b.get)
        assert int8_label == float_label or a[float_label] - a[int8_label] <= 2 * max(differences), (a, b)
    changed = sum(max(a, key=a.get) != max(b, key=b.get) for a, b in zip(reference, quantised, strict=True))
    assert changed <= len(texts) // 10, f"int8 changed {changed} of {len(texts)} labels"
    # A layer's input is quantised with one scale per forward pass, so the texts sharing a batch move an answer
    # slightly (and can flip a near-tie, above); alone and in a batch the answers stay close.
    alone = int8.probabilities(texts[:1])[0]
    assert all(abs(alone[label] - quantised[0][label]) < 0.02 for label in alone)

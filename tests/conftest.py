"""Fixtures: tiny base models built in code, and classifiers really trained by `train` from them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from harness import make_ml_tree, run_train
from sample_data import make_rows
from tiny_models import TINY_HYPERPARAMETERS, build_bert, build_gpt2

# tests/sdk needs the SageMaker Python SDK, which lives in a venv of its own (requirements/sdk.txt, `make test-sdk`).
collect_ignore = [] if importlib.util.find_spec("sagemaker") else ["sdk"]


@pytest.fixture(scope="session")
def tiny_bert_base(tmp_path_factory) -> Path:
    """The tiny BERT from seed 0, as local_test builds it: the same weights, so the same trained models, every run."""
    return build_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_gpt2_base(tmp_path_factory) -> Path:
    return build_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


def _train_once(tmp_path_factory, name: str, base_model: Path, rows: list[dict], **hyper: str) -> Path:
    base = make_ml_tree(
        tmp_path_factory.mktemp(name),
        {**TINY_HYPERPARAMETERS, **hyper},
        {"train": rows, "model": base_model},
        channel_format="jsonl",
    )
    result = run_train(base)
    assert result.returncode == 0, f"train failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return base / "model"


@pytest.fixture(scope="session")
def bert_model_dir(tmp_path_factory, tiny_bert_base) -> Path:
    """A BERT classifier trained by `train` on the four-topic sample (labels: finance, sport, tech, weather)."""
    return _train_once(tmp_path_factory, "bert-trained", tiny_bert_base, make_rows(400))


@pytest.fixture(scope="session")
def gpt2_model_dir(tmp_path_factory, tiny_gpt2_base) -> Path:
    """A GPT-2 classifier trained by `train` on the same sample."""
    return _train_once(tmp_path_factory, "gpt2-trained", tiny_gpt2_base, make_rows(400))


@pytest.fixture(scope="session")
def multilabel_model_dir(tmp_path_factory, tiny_bert_base) -> Path:
    """A multi-label BERT classifier: each text carries its topic and, for half of them, also 'news'; trained with a
    decision threshold of 0.4 instead of the default 0.5, which `serve` must apply."""
    rows = [
        {"text": r["text"], "label": [r["label"]] + (["news"] if i % 2 else [])} for i, r in enumerate(make_rows(400))
    ]
    # Eight epochs: the tiny model learns multi-label targets slowly, and with two it answers the label priors alone.
    return _train_once(
        tmp_path_factory, "multilabel-trained", tiny_bert_base, rows, multi_label_threshold="0.4", epochs="8"
    )


@pytest.fixture(scope="session")
def pair_model_dir(tmp_path_factory, tiny_bert_base) -> Path:
    """A BERT classifier trained on text pairs (`text_pair_column=answer`), labelled by the topic of the answer."""
    firsts, seconds = make_rows(400, seed=1), make_rows(400, seed=2)
    rows = [
        {"text": first["text"], "answer": second["text"], "label": second["label"]}
        for first, second in zip(firsts[1:] + firsts[:1], seconds, strict=True)  # shifted: the topics disagree
    ]
    return _train_once(tmp_path_factory, "pair-trained", tiny_bert_base, rows, text_pair_column="answer")

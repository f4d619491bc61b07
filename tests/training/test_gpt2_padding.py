"""GPT-2 has no pad token and pools its last real token: padding side and batch size must not change answers."""

import pytest
import torch
from textclf.modeling import forward_logits, load_classifier, load_tokenizer

TEXTS = [
    "Storm and rain in the forecast.",
    "The striker scored a late goal for the team after a long season.",
    "Bank.",
    "The startup ships a new chip for cloud servers and laptops today.",
]


@pytest.fixture(scope="module")
def gpt2(gpt2_model_dir):
    tokenizer = load_tokenizer(gpt2_model_dir)
    model = load_classifier(gpt2_model_dir, tokenizer).eval()
    return model, tokenizer


def _batch(tokenizer, texts, side):
    tokenizer.padding_side = side
    try:
        return dict(tokenizer(texts, padding=True, return_tensors="pt"))
    finally:
        tokenizer.padding_side = "right"


@torch.no_grad()
def test_left_right_and_single_predictions_are_identical(gpt2):
    model, tokenizer = gpt2
    assert tokenizer.pad_token is not None and model.config.pad_token_id == tokenizer.pad_token_id
    alone = torch.cat([forward_logits(model, dict(tokenizer([t], return_tensors="pt"))) for t in TEXTS])
    right = forward_logits(model, _batch(tokenizer, TEXTS, "right"))
    left = forward_logits(model, _batch(tokenizer, TEXTS, "left"))
    torch.testing.assert_close(right, alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(left, alone, rtol=1e-5, atol=1e-5)
    assert (right.argmax(-1) == alone.argmax(-1)).all()


@torch.no_grad()
def test_without_mask_positions_left_padding_would_change_answers(gpt2):
    """The reason forward_logits counts positions: a plain forward pass shifts left-padded texts."""
    model, tokenizer = gpt2
    alone = torch.cat([model(**tokenizer([t], return_tensors="pt")).logits for t in TEXTS])
    left = model(**_batch(tokenizer, TEXTS, "left")).logits
    assert not torch.allclose(left, alone, atol=1e-4)

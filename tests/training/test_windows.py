"""Long-text windows on the tiny models' real tokenizers: split, overlap, cap and head_tail, exact on known token
counts; and the per-text aggregation against the windows' outputs combined by hand."""

from __future__ import annotations

import math

import pytest
from textclf.modeling import load_tokenizer
from textclf.windows import LongTextPolicy, aggregate, owners_of, reads_all, text_windows
from transformers import AutoTokenizer

MAX_LENGTH = 16


@pytest.fixture(params=["bert", "gpt2"])
def tokenizer(request, tiny_bert_base, tiny_gpt2_base):
    return load_tokenizer(tiny_bert_base if request.param == "bert" else tiny_gpt2_base)


def _specials(tokenizer) -> tuple[list[int], list[int]]:
    """[CLS] and [SEP] for BERT, nothing for GPT-2: read off the tokenizer's own encoding of one word."""
    bare = tokenizer("rain", add_special_tokens=False)["input_ids"]
    full = tokenizer("rain")["input_ids"]
    return (full[:1], full[-1:]) if len(full) == len(bare) + 2 else ([], [])


def _text_of(tokenizer, tokens: int) -> tuple[str, list[int]]:
    """A text that tokenises to exactly `tokens` content tokens (one per word), and those tokens."""
    words = "rain forecast frost goal humid keeper league robot".split()
    text = " ".join(words[i % len(words)] for i in range(tokens))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == tokens, "each of these words is one token in both tiny vocabularies"
    return text, ids


@pytest.mark.parametrize("tokens", [5, 20, 37, 100])
def test_chunks_split_with_the_documented_stride_and_end_at_the_text_end(tokenizer, tokens):
    prefix, suffix = _specials(tokenizer)
    content = MAX_LENGTH - len(prefix) - len(suffix)
    stride = 6
    text, ids = _text_of(tokenizer, tokens)
    windows = text_windows(tokenizer, [text], MAX_LENGTH, LongTextPolicy("chunks", stride, max_chunks=100))[0]
    if tokens <= content:
        expected_starts = [0]
    else:  # starts 0, 6, 12, ... while the window ends before the text does; the last window ends at the end
        expected_starts = [*range(0, tokens - content, stride), tokens - content]
    expected = [prefix + ids[start : start + content] + suffix for start in expected_starts]
    assert [w["input_ids"] for w in windows] == expected
    assert all(len(w["input_ids"]) <= MAX_LENGTH for w in windows)
    if len(expected_starts) > 2:  # neighbours overlap by content - stride tokens
        first, second = windows[0]["input_ids"], windows[1]["input_ids"]
        body = slice(len(prefix), len(first) - len(suffix))
        assert first[body][stride:] == second[body][: content - stride]


def test_the_cap_keeps_the_first_windows(tokenizer):
    prefix, suffix = _specials(tokenizer)
    content = MAX_LENGTH - len(prefix) - len(suffix)
    text, ids = _text_of(tokenizer, 200)
    policy = LongTextPolicy("chunks", stride=10, max_chunks=3)
    windows = text_windows(tokenizer, [text], MAX_LENGTH, policy)[0]
    assert [w["input_ids"] for w in windows] == [prefix + ids[s : s + content] + suffix for s in (0, 10, 20)]
    assert not reads_all(200, content, policy)
    assert reads_all(content + 20, content, policy)  # windows at 0, 10, 20 end exactly at the end
    assert not reads_all(content + 21, content, policy)


def test_the_default_stride_overlaps_a_quarter(tokenizer):
    prefix, suffix = _specials(tokenizer)
    content = MAX_LENGTH - len(prefix) - len(suffix)
    text, ids = _text_of(tokenizer, 60)
    windows = text_windows(tokenizer, [text], MAX_LENGTH, LongTextPolicy("chunks"))[0]
    stride = int(content * 0.75)
    starts = [*range(0, 60 - content, stride), 60 - content]
    assert [w["input_ids"] for w in windows] == [prefix + ids[s : s + content] + suffix for s in starts]


def test_head_tail_keeps_the_first_quarter_and_the_last_tokens(tokenizer):
    prefix, suffix = _specials(tokenizer)
    content = MAX_LENGTH - len(prefix) - len(suffix)
    text, ids = _text_of(tokenizer, 50)
    (window,) = text_windows(tokenizer, [text], MAX_LENGTH, LongTextPolicy("head_tail"))[0]
    head = content // 4
    assert window["input_ids"] == prefix + ids[:head] + ids[50 - (content - head) :] + suffix
    assert len(window["input_ids"]) == MAX_LENGTH


@pytest.mark.parametrize("policy", ["truncate", "head_tail", "chunks"])
def test_a_text_that_fits_is_one_window_encoded_as_truncation_encodes_it(tokenizer, policy):
    text, _ = _text_of(tokenizer, 7)
    (window,) = text_windows(tokenizer, [text], MAX_LENGTH, LongTextPolicy(policy))[0]
    plain = tokenizer(text, truncation=True, max_length=MAX_LENGTH)
    assert window["input_ids"] == plain["input_ids"]
    assert window.get("token_type_ids") == plain.get("token_type_ids")


def test_truncate_reads_the_first_max_length_tokens_as_the_tokenizer_cuts_them(tiny_bert_base):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_base)
    text, _ = _text_of(tokenizer, 40)
    (window,) = text_windows(tokenizer, [text], MAX_LENGTH, LongTextPolicy("truncate"))[0]
    assert window["input_ids"] == tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]


def _softmax(row):
    exps = [math.exp(x) for x in row]
    return [e / sum(exps) for e in exps]


def test_single_label_aggregation_is_the_mean_of_the_windows_probabilities():
    rows = [[2.0, 0.0, -1.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0], [0.5, -0.5, 4.0]]
    owners = [0, 0, 1, 2]  # text 0 has two windows, texts 1 and 2 one each
    text0 = [(a + b) / 2 for a, b in zip(_softmax(rows[0]), _softmax(rows[1]), strict=True)]
    result = aggregate(rows, owners, multi_label=False)
    assert _softmax(result[0]) == pytest.approx(text0, rel=1e-12)
    assert result[1:] == [rows[2], rows[3]]  # one window: its logits unchanged
    means = aggregate(rows, owners, multi_label=False, rule="mean_logits")[0]
    assert means == pytest.approx([1.0, 1.5, -0.5])


def test_multi_label_aggregation_is_the_per_label_maximum():
    rows = [[-3.0, 2.0], [1.0, -4.0], [0.5, 0.5]]
    assert aggregate(rows, [0, 0, 1], multi_label=True) == [[1.0, 2.0], [0.5, 0.5]]


def test_owners_number_the_windows_by_text():
    assert owners_of([["a"], ["b", "c", "d"], ["e"]]) == [0, 1, 1, 1, 2]

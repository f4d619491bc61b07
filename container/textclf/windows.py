"""Long texts: how a text longer than max_length becomes the windows the model reads, and how the windows'
outputs become one answer per text. Shared by `train` (training, evaluation) and `serve`, so both read a text
the same way. Standard library only: the serving front reads the policy before torch is loaded.

Policies (the hyperparameter `long_text`, saved in textclf.json):
- truncate: the first max_length tokens (special tokens included).
- head_tail: the first quarter and the last three quarters of the window's content tokens, after Sun et al. 2019
  ("How to Fine-Tune BERT for Text Classification?"), where keeping the head and the tail beat either alone.
- chunks: windows of max_length tokens whose contents start `stride` tokens apart; the last window ends at the
  text's end (so no window is a short scrap), at most `max_chunks` windows (the first ones) per text. Every window
  is classified and the outputs are aggregated per text (`aggregate`).
A text that fits max_length is one window, identical under every policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

POLICIES = ("truncate", "head_tail", "chunks")
DEFAULT_MAX_CHUNKS = 16
# Contents of neighbouring windows overlap by a quarter by default: a sentence cut at one window's edge is whole
# in the next, for sentences up to a quarter window long, at a third more windows than no overlap.
DEFAULT_STRIDE_SHARE = 0.75
HEAD_SHARE = 0.25  # head_tail: share of the content tokens taken from the text's start


@dataclass(frozen=True)
class LongTextPolicy:
    name: str = "truncate"
    stride: int | None = None  # chunks: content tokens between window starts; None: DEFAULT_STRIDE_SHARE
    max_chunks: int = DEFAULT_MAX_CHUNKS

    def content_stride(self, content: int) -> int:
        """Tokens between window starts for windows of `content` content tokens (at least 1, at most content)."""
        stride = self.stride if self.stride is not None else int(content * DEFAULT_STRIDE_SHARE)
        return max(1, min(stride, content))

    def tokens_read(self, max_length: int) -> int:
        """The most tokens of a text's start that the policy can use: what a reader must keep of each text.
        head_tail reads the end too: `keeps_tail`."""
        if self.name != "chunks":
            return max_length
        return max_length + (self.max_chunks - 1) * self.content_stride(max_length)

    @property
    def keeps_tail(self) -> bool:
        return self.name == "head_tail"


def window_spans(length: int, content: int, policy: LongTextPolicy) -> list[list[tuple[int, int]]]:
    """The content-token spans [start, end) each window of a text of `length` content tokens reads: one list of
    spans per window (head_tail's one window has two spans). `content` is max_length less the special tokens."""
    if length <= content or policy.name == "truncate":
        return [[(0, min(length, content))]]
    if policy.name == "head_tail":
        head = int(content * HEAD_SHARE)
        return [[(0, head), (length - (content - head), length)]]
    stride = policy.content_stride(content)
    count = min(math.ceil((length - content) / stride) + 1, policy.max_chunks)
    starts = [min(i * stride, length - content) for i in range(count)]
    return [[(start, start + content)] for start in starts]


TRUNCATE = LongTextPolicy()


@dataclass(frozen=True)
class Framing:
    """A tokenizer's special tokens around a single text (BERT: [CLS] ... [SEP]; GPT-2: none), learnt by
    encoding a probe with and without them, so any tokenizer works without knowing its family."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    token_types: bool  # the model takes token_type_ids (all 0 for a single text)

    @classmethod
    def of(cls, tokenizer) -> Framing:
        probe = "a"
        bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
        full = tokenizer(probe)
        ids = full["input_ids"]
        for start in range(len(ids) - len(bare) + 1):
            if ids[start : start + len(bare)] == bare:
                return cls(tuple(ids[:start]), tuple(ids[start + len(bare) :]), "token_type_ids" in full)
        raise ValueError("cannot find a text's tokens inside its encoding with special tokens")

    @property
    def specials(self) -> int:
        return len(self.prefix) + len(self.suffix)


def content_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Each text's tokens without special tokens, whole: the windows are cut from them."""
    return tokenizer(
        list(texts), add_special_tokens=False, truncation=False, return_attention_mask=False, verbose=False
    )["input_ids"]


def frame_windows(ids: Sequence[int], framing: Framing, max_length: int, policy: LongTextPolicy) -> list[dict]:
    """The features of each window the model reads of one text ({"input_ids"[, "token_type_ids"]}), unpadded."""
    windows = []
    for spans in window_spans(len(ids), max_length - framing.specials, policy):
        window = [*framing.prefix, *(i for start, end in spans for i in ids[start:end]), *framing.suffix]
        features = {"input_ids": window}
        if framing.token_types:
            features["token_type_ids"] = [0] * len(window)
        windows.append(features)
    return windows


def text_windows(tokenizer, texts: Sequence[str], max_length: int, policy: LongTextPolicy) -> list[list[dict]]:
    """Per text, its windows' features (`frame_windows`)."""
    framing = Framing.of(tokenizer)
    return [frame_windows(ids, framing, max_length, policy) for ids in content_ids(tokenizer, texts)]


def reads_all(length: int, content: int, policy: LongTextPolicy) -> bool:
    """Whether the policy's windows cover every one of a text's `length` content tokens."""
    if length <= content:
        return True
    return policy.name == "chunks" and window_spans(length, content, policy)[-1][0][1] == length


def owners_of(windows_per_text: Sequence[Sequence]) -> list[int]:
    """The text index of each window, windows flattened in text order."""
    return [text for text, windows in enumerate(windows_per_text) for _ in windows]


def aggregate(
    rows: Sequence[Sequence[float]], owners: Sequence[int], multi_label: bool, rule: str = "mean_probs"
) -> list[list[float]]:
    """One logit row per text from its windows' logit rows (`owners[i]` is row i's text; texts numbered 0..n-1,
    each with at least one row). Single-label: the log of the mean of the windows' softmax probabilities, so a
    softmax of the result is that mean. Multi-label: the per-label maximum (a label is present when any window
    shows it). A text of one window keeps its logits unchanged. `rule="mean_logits"` (single-label) averages the
    logits instead: the benchmark compares both (README, "Long texts")."""
    grouped: list[list[Sequence[float]]] = [[] for _ in range(max(owners, default=-1) + 1)]
    for row, owner in zip(rows, owners, strict=True):
        grouped[owner].append(row)
    result = []
    for windows in grouped:
        if len(windows) == 1:
            result.append([float(x) for x in windows[0]])
        elif multi_label:
            result.append([max(column) for column in zip(*windows, strict=True)])
        elif rule == "mean_logits":
            result.append([sum(column) / len(windows) for column in zip(*windows, strict=True)])
        else:
            result.append(_log_mean_softmax(windows))
    return result


def _log_mean_softmax(windows: Sequence[Sequence[float]]) -> list[float]:
    means = [0.0] * len(windows[0])
    for row in windows:
        top = max(row)
        exps = [math.exp(x - top) for x in row]
        total = sum(exps)
        for j, e in enumerate(exps):
            means[j] += e / total / len(windows)
    return [math.log(max(m, 1e-45)) for m in means]

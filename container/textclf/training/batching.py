"""Tokenising once, grouping texts of similar length into batches, and padding each batch only to its own longest.

The order of batches is a pure function of (seed, epoch), so a resumed job can skip exactly the batches it had
already seen and end with the same weights as a job that was never interrupted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from ..windows import TRUNCATE, LongTextPolicy, owners_of, text_windows
from .data import Example, LabelSet

# Batches are formed inside windows of this many batches: enough to sort by length, small enough to stay random.
LENGTH_GROUP_WINDOW = 50


@dataclass
class EncodedSet:
    """Rows the model reads: one per text, or with a windowed long-text policy one per window, each window
    carrying its text's target; `owners[i]` is row i's text (None: row i is text i)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    targets: list
    owners: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def text_count(self) -> int:
        return len(self) if self.owners is None else len(set(self.owners))

    @property
    def text_targets(self) -> list:
        """One target per text, in text order."""
        if self.owners is None:
            return self.targets
        firsts = {}
        for row, owner in enumerate(self.owners):
            firsts.setdefault(owner, row)
        return [self.targets[firsts[text]] for text in range(len(firsts))]

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def encode(
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    labels: LabelSet,
    max_length: int,
    policy: LongTextPolicy = TRUNCATE,
) -> EncodedSet:
    texts = [e.text for e in examples]
    if policy.name != "truncate":  # pairs only ever truncate (hyperparameters.parse)
        windows = text_windows(tokenizer, texts, max_length, policy)
        owners = owners_of(windows)
        rows = [features for per_text in windows for features in per_text]
        targets = [labels.encode(examples[owner].label) for owner in owners]
        return EncodedSet([f["input_ids"] for f in rows], None, targets, owners)  # single texts: type ids all 0
    pairs = [e.text_pair or "" for e in examples] if examples and examples[0].text_pair is not None else None
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
    token_types = encoded.get("token_type_ids") if pairs is not None else None
    return EncodedSet(encoded["input_ids"], token_types, [labels.encode(e.label) for e in examples])


def training_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled batches of indices, texts of similar length together; the same list for the same (seed, epoch)."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * LENGTH_GROUP_WINDOW
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def evaluation_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Longest first and unshuffled: the least padding, and any out-of-memory error shows up at once."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    return [order[j : j + batch_size] for j in range(0, len(order), batch_size)]


def collate(data: EncodedSet, indices: list[int], pad_token_id: int, multi_label: bool) -> dict[str, torch.Tensor]:
    """A right-padded batch: input_ids, attention_mask, token_type_ids when the inputs are pairs, and labels."""
    rows = [data.input_ids[i] for i in indices]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if data.token_type_ids is not None:
        token_types = torch.zeros((len(rows), width), dtype=torch.long)
        for row, index in enumerate(indices):
            types = data.token_type_ids[index]
            token_types[row, : len(types)] = torch.tensor(types, dtype=torch.long)
        batch["token_type_ids"] = token_types
    targets = [data.targets[i] for i in indices]
    batch["labels"] = torch.tensor(targets, dtype=torch.float if multi_label else torch.long)
    return batch

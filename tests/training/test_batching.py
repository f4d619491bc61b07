"""Length-grouped batches: every text once per epoch, reproducible order, and less padding than random batches."""

import random

from textclf.training.batching import EncodedSet, collate, training_batches


def _padding(batches, lengths):
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_each_text_once_per_epoch_and_order_is_a_function_of_seed_and_epoch():
    lengths = [random.Random(0).randint(5, 200) for _ in range(1000)]
    batches = training_batches(lengths, 16, seed=42, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == training_batches(lengths, 16, seed=42, epoch=0)
    assert batches != training_batches(lengths, 16, seed=42, epoch=1)


def test_grouping_by_length_cuts_padding():
    rng = random.Random(1)
    lengths = [rng.randint(5, 250) for _ in range(2000)]
    grouped = training_batches(lengths, 32, seed=0, epoch=0)
    order = list(range(2000))
    rng.shuffle(order)
    shuffled = [order[i : i + 32] for i in range(0, 2000, 32)]
    assert _padding(grouped, lengths) < 0.2 * _padding(shuffled, lengths)


def test_collate_pads_to_the_longest_in_the_batch_only():
    data = EncodedSet([[5, 6, 7], [8], [1, 2, 3, 4, 5, 6, 7, 8, 9]], None, [0, 1, 0])
    batch = collate(data, [0, 1], pad_token_id=0, multi_label=False)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [0, 1]

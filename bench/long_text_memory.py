"""Peak memory of a real `train` run whose training data holds one very long text.

    python bench/long_text_memory.py [--mb 50] [--format jsonl|csv]
Runs `train` once as a subprocess (tiny random BERT, the 40-row sample data plus one row whose text is `--mb`
megabytes of words; `--mb 0` leaves that row out) and prints the child's peak resident memory and its exit code.
One run per invocation: the peak of a process's children covers every child it ever waited for.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tools")]

from harness import failure_text, make_ml_tree, run_train  # noqa: E402
from sample_data import TOPICS, make_rows, write_rows  # noqa: E402
from tiny_models import TINY_HYPERPARAMETERS, build_bert  # noqa: E402


def long_text(megabytes: int) -> str:
    words = " ".join(TOPICS["sport"]) + " "
    return (words * (megabytes * 1_000_000 // len(words) + 1))[: megabytes * 1_000_000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50, help="size of the long text in megabytes (0: none)")
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        rows = make_rows(40)
        if args.mb:
            rows.append({"text": long_text(args.mb), "label": "sport"})
        base = make_ml_tree(
            scratch / "ml", {**TINY_HYPERPARAMETERS, "max_steps": "2"}, {"model": build_bert(scratch / "bert")}
        )
        write_rows(base / "input" / "data" / "train" / f"train.{args.format}", rows, args.format)
        started = time.monotonic()
        result = run_train(base, timeout=1800)
        seconds = time.monotonic() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"{args.format}, long text {args.mb} MB: train exit {result.returncode}, peak RSS {peak_mib:.0f} MiB, "
            f"{seconds:.1f} s"
        )
        if result.returncode:
            print("failure:", failure_text(base).strip())


if __name__ == "__main__":
    main()

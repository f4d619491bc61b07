"""Training side by side: our `train` against the transformers Trainer (defaults, then `group_by_length=True`), on
the same data, model, max length, batch size, learning rate, epochs and seed, run in turns.

Each run is a fresh process; its peak memory comes from the kernel's accounting of that one child (wait4).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from harness import make_ml_tree, train_env

REPO = Path(__file__).resolve().parents[1]


def _run(command: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """Exit status, wall seconds and peak resident MB of one child process."""
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
    return process.returncode, time.monotonic() - started, usage.ru_maxrss / 1024


def run_ours(data: dict, model: Path, settings: dict, work: Path, extra: dict | None = None) -> dict:
    hyper = {
        "epochs": str(settings["epochs"]),
        "per_device_batch_size": str(settings["batch"]),
        "learning_rate": str(settings["learning_rate"]),
        "max_length": str(settings["max_length"]),
        "seed": str(settings["seed"]),
        "logging_steps": "1000000",  # one progress line, at the last step: its rate covers the whole loop
        "checkpoint_steps": "1000000",
        # The Trainer baseline cuts texts at max_length; our default (chunks) would read every token of the longer
        # texts, 1,872 windows for 1,674 texts here: more work, and another task. The same task is compared.
        "long_text": "truncate",
        **(extra or {}),
    }
    channels = {"train": data["train"], "validation": data["validation"], "model": model}
    tree = make_ml_tree(work, hyper, channels, "jsonl")
    log = work / "train.log"
    code, wall, peak = _run([sys.executable, str(REPO / "train")], train_env(tree), log)
    text = log.read_text(errors="replace")
    if code != 0:
        sys.exit(f"train failed ({code}):\n{text[-3000:]}")
    rate = float(re.findall(r"samples_per_second=([0-9.]+);", text)[-1])
    accuracy = float(re.findall(r"eval_accuracy=([0-9.]+);", text)[-1])
    samples = len(data["train"]) * settings["epochs"]
    return {
        "samples_per_s": rate,
        "real_tokens_per_s": rate * data["mean_train_tokens"],
        "train_loop_s": samples / rate,
        "wall_s": wall,
        "peak_rss_mb": peak,
        "accuracy": accuracy,
    }


def run_trainer(data: dict, model: Path, settings: dict, work: Path, python: str, group_by_length: bool) -> dict:
    folder = work / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in data[split]))
    command = [
        python, str(REPO / "bench" / "trainer_baseline.py"), "--data", str(folder), "--model", str(model),
        "--out", str(work / "out"), "--epochs", str(settings["epochs"]), "--batch", str(settings["batch"]),
        "--learning-rate", str(settings["learning_rate"]), "--max-length", str(settings["max_length"]),
        "--seed", str(settings["seed"]),
    ]  # fmt: skip
    if group_by_length:
        command.append("--group-by-length")
    log = work / "trainer.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    code, wall, peak = _run(command, env, log)
    text = log.read_text(errors="replace")
    if code != 0:
        sys.exit(f"the Trainer baseline failed ({code}):\n{text[-3000:]}")
    result = json.loads(text[text.rindex("RESULT ") + len("RESULT ") :].splitlines()[0])
    return {**result, "wall_s": wall, "peak_rss_mb": peak}


SYSTEMS = ("ours", "trainer_defaults", "trainer_group_by_length")


def compare(data: dict, model: Path, settings: dict, rounds: int, trainer_python: str, scratch: Path) -> dict:
    """{system: [one result per round]}, the systems run in turns within each round (A, B, C, A, B, C, ...).

    Round r runs every system with seed + r: one seed's accuracy on 196 validation texts varies by a few points
    (one standard error is about 3), so the medians over rounds compare training recipes, not lucky seeds.
    """
    runs: dict[str, list[dict]] = {name: [] for name in SYSTEMS}
    for round_number in range(rounds):
        seeded = {**settings, "seed": settings["seed"] + round_number}
        for name in SYSTEMS:
            work = scratch / f"train-{name}-{round_number}"
            if name == "ours":
                result = run_ours(data, model, seeded, work)
            else:
                result = run_trainer(data, model, seeded, work, trainer_python, name == "trainer_group_by_length")
            runs[name].append(result)
            print(
                f"  round {round_number + 1}/{rounds} {name:24} {result['samples_per_s']:7.1f} samples/s  "
                f"accuracy {result['accuracy']:.3f}  wall {result['wall_s']:6.1f} s  "
                f"peak {result['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    return runs

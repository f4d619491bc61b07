"""A team's own training code, as script mode receives it: the scripts and the source directories the Docker and
SDK suites hand to the image, and a tiny wheel built here (the tests download nothing)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

# The usual script-mode style: hyperparameters as arguments, the SM_* variables as defaults. It "trains" a
# majority-label classifier, enough to prove it read the channel and wrote to the model directory.
TRAIN_SCRIPT = """\
import argparse, collections, csv, glob, json, os

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--label-column", default="label")
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
args, _ = parser.parse_known_args()

counts = collections.Counter()
for path in glob.glob(os.path.join(args.train, "*.csv")):
    with open(path, newline="") as handle:
        counts.update(row[args.label_column] for row in csv.DictReader(handle))
for path in glob.glob(os.path.join(args.train, "*.jsonl")):
    with open(path) as handle:
        counts.update(json.loads(line)[args.label_column] for line in handle if line.strip())
model = {"majority": counts.most_common(1)[0][0], "rows": sum(counts.values()), "epochs": args.epochs,
         "labels": sorted(counts), "hosts": json.loads(os.environ["SM_HOSTS"])}
with open(os.path.join(args.model_dir, "model.json"), "w") as handle:
    json.dump(model, handle)
print("trained on", model["rows"], "rows")
"""

# Checkpoints when SIGTERM arrives, after announcing that it is ready for it.
SIGTERM_SCRIPT = """\
import os, signal, sys, time

def on_sigterm(signum, frame):
    time.sleep(2)  # a checkpoint takes a moment: the job must wait for it
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "checkpoint.txt"), "w") as handle:
        handle.write(f"saved on {signal.Signals(signum).name}, pid {os.getpid()}")
    sys.exit(0)

signal.signal(signal.SIGTERM, on_sigterm)
print("ready for SIGTERM", flush=True)
time.sleep(600)
"""

FAILING_SCRIPT = """\
import sys
print("reading the data", flush=True)
for number in range(40):
    print(f"noise line {number}", file=sys.stderr)
print("ValueError: column 'label' holds 3 empty values; the last at row 17", file=sys.stderr)
sys.exit(3)
"""

# Imports a package that only requirements.txt brings, from the wheels shipped beside it.
WHEEL_SCRIPT = """\
import json, os
import tinydep
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as handle:
    json.dump({"tinydep": tinydep.VALUE}, handle)
"""


def source_dir(path: Path, script: str, name: str = "train.py") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(script)
    return path


def build_wheel(directory: Path, name: str = "tinydep", version: str = "1.0", value: int = 42) -> Path:
    """A pure-Python wheel holding one module, `name.VALUE = value`, written by hand (no build tool, no index)."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VALUE = {value}\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def record_line(member: str, content: str) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        return f"{member},sha256={digest},{len(content.encode())}"

    record = "\n".join(record_line(member, content) for member, content in files.items())
    files[f"{dist_info}/RECORD"] = record + f"\n{dist_info}/RECORD,,\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, content in files.items():
            archive.writestr(member, content)
    return wheel

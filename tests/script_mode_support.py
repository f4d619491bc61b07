"""A team's own training code, as script mode receives it: the scripts and the source directories the Docker and
SDK suites hand to the image, and a tiny wheel built here (the tests download nothing)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The README's example: hyperparameters as arguments, the SM_* variables as defaults, a majority-label "model".
TRAIN_SCRIPT = (REPO / "examples" / "training" / "train.py").read_text()

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
for number in range(100):  # more than the failure reason holds
    print(f"noise line {number}: a warning the script printed", file=sys.stderr)
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

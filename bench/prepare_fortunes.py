"""`prepare` on real text: every quotation of the benchmark's ten `fortunes` topics (not capped, not
de-duplicated), measured by the pretrained MiniLM's tokenizer, as a processing job's tree under --out.

    python bench/prepare_fortunes.py --out bench/results/prepare-fortunes

keeps the job's report there (report.json, duplicates.jsonl and the PNGs; the channels are thrown away) and prints
the report's counts, the recommended max_length, the wall time and the peak memory of the `prepare` process.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fortunes_data import TOPICS, ensure_fortunes, minilm, quotations

REPO = Path(__file__).resolve().parents[1]


def write_raw(path: Path) -> int:
    folder = ensure_fortunes()
    rows = [{"text": text, "label": topic} for topic in TOPICS for text in quotations(folder / topic)]
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the report goes (replaced)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        rows = write_raw(base / "processing/input/fortunes/fortunes.csv")
        shutil.copytree(minilm(), base / "processing/input/model")
        started = time.monotonic()
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
        subprocess.run([sys.executable, str(REPO / "prepare")], env=env, check=True)
        seconds = time.monotonic() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        shutil.rmtree(args.out, ignore_errors=True)
        shutil.copytree(base / "processing/output/report", args.out)
    report = json.loads((args.out / "report.json").read_text())
    print(f"{rows} quotations in {seconds:.1f} s, peak {peak_mb:.0f} MB")
    print(json.dumps({key: report[key] for key in ("rows_read", "rows_dropped", "duplicates", "splits")}, indent=1))
    print("recommended max_length:", report["token_lengths"]["recommended_max_length"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

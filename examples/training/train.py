"""A training script in the usual SageMaker script-mode style (README, "Training script"): hyperparameters arrive
as arguments, paths as SM_* variables. It "trains" a majority-label classifier: replace the middle with yours."""

import argparse
import collections
import csv
import glob
import json
import os
import signal
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--label-column", default="label")
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
args, _ = parser.parse_known_args()  # SageMaker may pass hyperparameters this script does not know


def stop(signum, frame):
    # Stop, time-out and spot reclaim send SIGTERM; SIGKILL follows 120 s later. Save what you have, then exit.
    print("SIGTERM: saving a checkpoint", flush=True)
    sys.exit(143)


signal.signal(signal.SIGTERM, stop)

counts = collections.Counter()
for path in glob.glob(os.path.join(args.train, "*.csv")):
    with open(path, newline="") as handle:
        counts.update(row[args.label_column] for row in csv.DictReader(handle))
for path in glob.glob(os.path.join(args.train, "*.jsonl")):
    with open(path) as handle:
        counts.update(json.loads(line)[args.label_column] for line in handle if line.strip())
if not counts:
    sys.exit(f"No .csv or .jsonl rows with a {args.label_column!r} column in {args.train}")  # stderr, exit 1

model = {
    "majority": counts.most_common(1)[0][0],
    "labels": sorted(counts),
    "rows": sum(counts.values()),
    "epochs": args.epochs,
}
with open(os.path.join(args.model_dir, "model.json"), "w") as handle:  # SM_MODEL_DIR becomes model.tar.gz
    json.dump(model, handle)
print(f"trained on {model['rows']} rows; majority label {model['majority']!r}")

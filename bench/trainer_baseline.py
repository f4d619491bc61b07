"""The training baseline: what a user would otherwise write, the transformers `Trainer` with its default arguments.

    python bench/trainer_baseline.py --data DIR --model DIR --out DIR [--group-by-length] [--epochs 1] ...
DIR holds train.jsonl and validation.jsonl ({"text", "label"} rows). Same model, data, max length, batch size,
learning rate, epochs and seed as our `train` is given; everything else stays at the Trainer's defaults
(`DataCollatorWithPadding`, no length grouping unless asked, bf16 only on a GPU). Prints one JSON line of results.
Runs in the benchmark's own environment (requirements/bench.txt: the Trainer needs accelerate), never the image's.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

STARTED = time.monotonic()  # before the heavy imports: wall time counts from process start, as for `train`

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)


class TrainTimer(TrainerCallback):
    """Seconds spent in the training loop proper (no loading, no saving, no evaluation)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.began = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self.began


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Encoded(torch.utils.data.Dataset):
    def __init__(self, features: dict, labels: list[int]) -> None:
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {**{key: values[i] for key, values in self.features.items()}, "labels": self.labels[i]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--group-by-length", action="store_true")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    train_rows, validation_rows = read_rows(args.data / "train.jsonl"), read_rows(args.data / "validation.jsonl")
    labels = sorted({row["label"] for row in train_rows})
    label_ids = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
    )

    def dataset(rows: list[dict]) -> Encoded:
        features = tokenizer([r["text"] for r in rows], truncation=True, max_length=args.max_length)
        return Encoded(dict(features), [label_ids[r["label"]] for r in rows])

    train_set, validation_set = dataset(train_rows), dataset(validation_rows)
    training_args = TrainingArguments(
        output_dir=str(args.out),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch,
        per_device_eval_batch_size=args.batch,
        learning_rate=args.learning_rate,
        seed=args.seed,
        # transformers 5 spells the old group_by_length=True as this sampler
        train_sampling_strategy="group_by_length" if args.group_by_length else "random",
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        report_to="none",
        save_strategy="no",  # the model is written once at the end, as `train` writes it
        disable_tqdm=True,
    )
    timer = TrainTimer()
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[timer],
    )
    trainer.train()
    trainer.save_model(str(args.out / "model"))
    tokenizer.save_pretrained(str(args.out / "model"))
    # Compared with the label_ids predict returns, not the dataset's order: with group_by_length, transformers 5
    # length-groups the evaluation sampler too, so predictions come back shuffled (accuracy read in dataset order
    # was 0.06, below chance).
    predictions = trainer.predict(validation_set)
    accuracy = float(np.mean(np.argmax(predictions.predictions, axis=-1) == predictions.label_ids))
    samples = len(train_set) * args.epochs
    real_tokens = sum(len(ids) for ids in train_set.features["input_ids"]) * args.epochs
    result = {
        "samples_per_s": samples / timer.seconds,
        "real_tokens_per_s": real_tokens / timer.seconds,
        "train_loop_s": timer.seconds,
        "wall_s": time.monotonic() - STARTED,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "accuracy": accuracy,
        "torch_threads": torch.get_num_threads(),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

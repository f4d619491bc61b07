"""What TEXTCLF_DTYPE=int8 changes in a trained model's answers: validation accuracy in float32, bfloat16 and int8,
and the share of float32's labels each of the others keeps, over the benchmark's fortunes validation texts.
bfloat16 is there for scale: it is what `auto` serves on CPUs with bf16 instructions, and it moves labels too.

    python bench/int8_agreement.py [--model DIR]
Without --model it first trains MiniLM for one epoch on the benchmark's fortunes training texts (`train`, as
bench/run.py runs it). Each precision loads the model the way `serve` does (textclf.modeling; for int8 then
textclf.cpu_kernels, the function the server runs) and scores each text alone. Prints one JSON line and writes
bench/results/int8-agreement-<stamp>.json. Speed is measured by `bench/run.py --variant TEXTCLF_DTYPE=int8`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "container"), str(REPO / "tools"), str(REPO / "bench")]

import fortunes_data  # noqa: E402
import run  # noqa: E402
import torch  # noqa: E402
import train_compare  # noqa: E402
from textclf.cpu_kernels import quantize_linear_layers  # noqa: E402
from textclf.modeling import forward_logits, load_classifier, load_tokenizer  # noqa: E402
from textclf.serving.modelinfo import describe_model  # noqa: E402


def predictions(model, tokenizer, texts: list[str], max_length: int) -> list[int]:
    with torch.inference_mode():
        return [
            int(forward_logits(model, dict(tokenizer(text, truncation=True, max_length=max_length,
                                                       return_tensors="pt"))).argmax(-1))
            for text in texts
        ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model directory written by `train` on the fortunes topics")
    args = parser.parse_args()
    base_model = fortunes_data.minilm()
    data = run.dataset(base_model, None)
    trained = None
    with tempfile.TemporaryDirectory(prefix="int8-agreement-") as scratch:
        model_dir = args.model
        if model_dir is None:
            print("training MiniLM for one epoch on the fortunes training texts ...", flush=True)
            trained = train_compare.run_ours(data, base_model, run.TRAINING, Path(scratch))
            model_dir = Path(scratch) / "model"
        info = describe_model(model_dir)
        tokenizer = load_tokenizer(model_dir)
        texts = [row["text"] for row in data["validation"]]
        gold = [info.labels.index(row["label"]) for row in data["validation"]]
        exact = predictions(load_classifier(model_dir, tokenizer).eval(), tokenizer, texts, info.max_length)
        bf16_model = load_classifier(model_dir, tokenizer, dtype=torch.bfloat16).eval()
        bf16 = predictions(bf16_model, tokenizer, texts, info.max_length)
        int8_model = quantize_linear_layers(load_classifier(model_dir, tokenizer).eval())
        quantised = predictions(int8_model, tokenizer, texts, info.max_length)

    def accuracy(predicted: list[int]) -> float:
        return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)

    def kept(predicted: list[int]) -> float:
        return sum(a == b for a, b in zip(exact, predicted, strict=True)) / len(texts)

    result = {
        "model": str(args.model) if args.model else "MiniLM trained one epoch by this run",
        "training": trained,
        "validation_texts": len(texts),
        "accuracy_float32": accuracy(exact),
        "accuracy_int8": accuracy(quantised),
        "labels_kept": kept(quantised),  # int8's, against float32
        "accuracy_bfloat16": accuracy(bf16),
        "labels_kept_bfloat16": kept(bf16),
        "torch": torch.__version__,
        "machine": run.machine(),
    }
    run.RESULTS.mkdir(parents=True, exist_ok=True)
    out = run.RESULTS / f"int8-agreement-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

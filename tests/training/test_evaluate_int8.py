"""evaluate_int8=true: `train` scores the kept model as `serve` would answer with TEXTCLF_DTYPE=int8, before anyone
switches an endpoint to it, and still writes the float32 model."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from harness import make_ml_tree, run_train, sitecustomize_env
from safetensors import safe_open
from sample_data import make_rows
from textclf.cpu_kernels import quantize_linear_layers
from textclf.modeling import forward_logits, load_classifier, load_tokenizer
from textclf.serving.modelinfo import describe_model
from textclf.serving.predictor import float32_advice
from tiny_models import TINY_HYPERPARAMETERS


def _train(tmp_path, tiny_bert_base, rows, validation, env: dict[str, str] | None = None, **hyper):
    base = make_ml_tree(
        tmp_path,
        {**TINY_HYPERPARAMETERS, "evaluate_int8": "true", **hyper},
        {"train": rows, "validation": validation, "model": tiny_bert_base},
        channel_format="jsonl",
    )
    result = run_train(base, **(env or {}))
    assert result.returncode == 0, f"train failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return base, result.stdout + result.stderr


@torch.no_grad()
def _logits(model, tokenizer, texts) -> torch.Tensor:
    return torch.cat([forward_logits(model, dict(tokenizer(t, return_tensors="pt"))) for t in texts]).float()


def test_int8_scores_are_those_of_the_written_model_quantised(tmp_path, tiny_bert_base):
    validation = make_rows(120, seed=5)
    # fp32: the scores below are recomputed in float32, and a bf16 CPU would otherwise evaluate in bf16.
    base, log = _train(tmp_path, tiny_bert_base, make_rows(400), validation, precision="fp32", epochs="4")
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    int8 = metrics["validation_int8"]
    assert set(int8) >= {"loss", "accuracy", "macro_f1", "labels_kept"}, int8
    assert "validation_int8_accuracy=" in log and "validation_int8_labels_kept=" in log
    assert "of the validation labels" in log

    # Recomputed here, one text at a time, from the model `train` wrote: int8 scales each batch's inputs on the fly,
    # so batches may move a borderline text; a few texts' worth of difference is allowed, no more.
    model_dir = base / "model"
    tokenizer = load_tokenizer(model_dir)
    labels = json.loads((model_dir / "config.json").read_text())["id2label"]
    gold = [list(labels.values()).index(row["label"]) for row in validation]
    texts = [row["text"] for row in validation]
    float_logits = _logits(load_classifier(model_dir, tokenizer).eval(), tokenizer, texts)
    int8_logits = _logits(quantize_linear_layers(load_classifier(model_dir, tokenizer).eval()), tokenizer, texts)
    as_trained, quantised = float_logits.argmax(-1).tolist(), int8_logits.argmax(-1).tolist()
    float_loss, int8_loss = (float(F.cross_entropy(x, torch.tensor(gold))) for x in (float_logits, int8_logits))

    def share_equal(these, those):
        return sum(a == b for a, b in zip(these, those, strict=True)) / len(these)

    slack = 3 / len(texts)
    assert abs(metrics["validation"]["accuracy"] - share_equal(as_trained, gold)) <= slack
    # The loss tells the two models apart even where every label agrees: int8's, not float32's, was scored.
    assert abs(metrics["validation"]["loss"] - float_loss) <= 1e-3 * float_loss
    assert int8["loss"] != metrics["validation"]["loss"]
    assert abs(int8["loss"] - int8_loss) <= 1e-2 * int8_loss, (int8["loss"], int8_loss, float_loss)
    assert abs(int8["accuracy"] - share_equal(quantised, gold)) <= slack, int8
    assert abs(int8["labels_kept"] - share_equal(as_trained, quantised)) <= slack, int8

    # What is written is the float32 model `serve` loads (int8 is applied by the server, on request).
    with safe_open(str(model_dir / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"F32"}
    recorded = json.loads((model_dir / "textclf.json").read_text())["metrics"]
    assert recorded["validation_int8"] == int8
    # What `serve` says at load where TEXTCLF_DTYPE=auto serves float32 (a CPU without bf16 instructions) quotes
    # these scores, read back from the model directory as the server reads it.
    advice = float32_advice(describe_model(model_dir).metrics)
    assert f"in int8 this model kept {int8['labels_kept']:.1%} of its validation labels" in advice, advice
    assert f"accuracy {int8['accuracy']:.3f} against {metrics['validation']['accuracy']:.3f}" in advice, advice


def test_multi_label_int8_compares_whole_label_sets(tmp_path, tiny_bert_base):
    def tagged(rows):
        return [{"text": r["text"], "label": [r["label"]] + (["news"] if i % 2 else [])} for i, r in enumerate(rows)]

    base, _ = _train(tmp_path, tiny_bert_base, tagged(make_rows(300)), tagged(make_rows(80, seed=6)), epochs="4")
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    int8, as_trained = metrics["validation_int8"], metrics["validation"]
    # labels_kept counts a text only when its whole set of labels is unchanged: never above exact-match agreement
    # allows, and never a per-label share (which the 5 labels would inflate).
    assert 0.0 <= int8["labels_kept"] <= 1.0
    assert abs(int8["accuracy"] - as_trained["accuracy"]) <= 1 - int8["labels_kept"] + 1e-9, (int8, as_trained)


def test_without_the_hyperparameter_no_int8_scores(tmp_path, tiny_bert_base):
    base, log = _train(tmp_path, tiny_bert_base, make_rows(200), make_rows(40, seed=7), evaluate_int8="false")
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert "validation_int8" not in metrics and "validation_int8" not in log
    advice = float32_advice(describe_model(base / "model").metrics)
    assert "train with evaluate_int8=true to see how many of this model's labels int8 keeps" in advice, advice


def test_without_validation_texts_the_job_says_int8_was_not_scored(tmp_path, tiny_bert_base):
    base = make_ml_tree(
        tmp_path,
        {**TINY_HYPERPARAMETERS, "evaluate_int8": "true", "validation_split": "0"},
        {"train": make_rows(120), "model": tiny_bert_base},
        channel_format="jsonl",
    )
    result = run_train(base)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no validation texts, so nothing was scored in int8" in result.stdout + result.stderr
    assert (base / "model" / "model.safetensors").exists()


def test_where_int8_cannot_run_the_job_says_why_and_still_writes_its_model(tmp_path, tiny_bert_base):
    # A torch without int8 kernels (NoQEngine): its quantize_dynamic raises. Stood in for by a sitecustomize that
    # makes torch's own function raise as it does there; the code under test is unchanged.
    no_int8_kernels = sitecustomize_env(
        tmp_path / "no-int8-kernels",
        "import torch.ao.quantization\n\n\n"
        "def quantize_dynamic(*args, **kwargs):\n"
        '    raise RuntimeError("Didn\'t find engine for operation quantized::linear_prepack NoQEngine")\n\n\n'
        "torch.ao.quantization.quantize_dynamic = quantize_dynamic\n",
    )
    base, log = _train(tmp_path, tiny_bert_base, make_rows(200), make_rows(40, seed=8), env=no_int8_kernels)
    assert "scoring in int8 failed; the model is written without int8 scores" in log
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert "validation_int8" not in metrics and "NoQEngine" in metrics["validation_int8_error"]
    assert metrics["validation"]["accuracy"] >= 0  # the float32 scores are all there
    assert (base / "model" / "model.safetensors").exists()
    recorded = json.loads((base / "model" / "textclf.json").read_text())["metrics"]
    assert recorded["validation_int8_error"] == metrics["validation_int8_error"]
    assert not (base / "output" / "failure").exists()

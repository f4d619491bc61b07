"""TEXTCLF_TRACE: on CPU the forward pass is served as a TorchScript graph recorded at load, and answers as the model
run by transformers' modules does; a graph that fails its check at load, or a trace that fails, leaves the model
serving as loaded."""

from __future__ import annotations

import pytest
from harness import largest_difference, servers_side_by_side, sitecustomize_env
from sample_data import SAMPLE_TEXTS, make_rows

ON_CPU = {"TEXTCLF_DEVICE": "cpu"}
# Probabilities from the graph and from the modules: the same kernels on the same shapes, equal to the bit where
# the CPU computes the precision natively. In bfloat16 on a CPU without bf16 instructions a logit may round a unit
# in the last place apart (2**-7 near 1). A graph that lost the attention mask or the positions moves a padded
# text's probabilities far more.
SAME_ANSWER = {"float32": 1e-3, "int8": 1e-3, "bfloat16": 1e-2}
TRACED, AS_LOADED = "forward pass traced", "forward pass as loaded"


def _texts() -> list[str]:
    # Lengths from a few tokens to past the tiny models' limit (cut there), so every batch below is padded.
    return list(SAMPLE_TEXTS.values()) + [row["text"] for row in make_rows(20, seed=8)] + ["word " * 300]


@pytest.mark.parametrize(
    "model, dtype",
    [
        ("bert_model_dir", "float32"),
        ("bert_model_dir", "bfloat16"),  # prepacked, then traced
        ("bert_model_dir", "int8"),
        ("gpt2_model_dir", "float32"),  # positions counted over real tokens, the last real token pooled
        ("gpt2_model_dir", "bfloat16"),
    ],
)
def test_the_traced_forward_pass_answers_as_the_model_does(request, model, dtype):
    model_dir = request.getfixturevalue(model)
    environments = [{"TEXTCLF_TRACE": switch, "TEXTCLF_DTYPE": dtype, **ON_CPU} for switch in ("on", "off")]
    with servers_side_by_side(model_dir, *environments) as (traced, as_loaded):
        assert TRACED in traced.log and "trace: forward pass recorded, and checked on 3 batches" in traced.log
        assert AS_LOADED in as_loaded.log and "trace:" not in as_loaded.log
        texts = _texts()
        together = traced.probabilities(texts)  # one padded batch, of another size than the trace saw
        assert largest_difference(together, as_loaded.probabilities(texts)) <= SAME_ANSWER[dtype]
        lone = texts[:4] + texts[-1:]  # run at their own lengths (float32) or padded to 16 tokens
        alone = [traced.probabilities([text])[0] for text in lone]
        assert largest_difference(alone, [as_loaded.probabilities([text])[0] for text in lone]) <= SAME_ANSWER[dtype]


# A graph that does not hold for other batches than the one it recorded, stood in for by a sitecustomize whose
# torch.jit.trace returns a graph that answers every batch with the recorded batch's logits; and a torch whose
# tracer fails. The code under test is unchanged.
STALE_GRAPH = """import torch


def trace(module, example, **kwargs):
    recorded = module(*example)
    return lambda *tensors: recorded


torch.jit.trace = trace
"""
NO_TRACER = """import torch


def trace(module, example, **kwargs):
    raise RuntimeError("this torch cannot trace")


torch.jit.trace = trace
"""


@pytest.mark.parametrize(
    "fault, why",
    [
        (STALE_GRAPH, "its logits differ from the model's on a batch of 1x"),
        (NO_TRACER, "this torch cannot trace"),
    ],
    ids=["stale-graph", "no-tracer"],
)
def test_a_trace_that_fails_leaves_the_model_serving_as_loaded(tmp_path, bert_model_dir, fault, why):
    faulty = {**sitecustomize_env(tmp_path / "fault", fault), **ON_CPU}
    as_loaded = {"TEXTCLF_TRACE": "off", **ON_CPU}
    with servers_side_by_side(bert_model_dir, faulty, as_loaded) as (server, plain):
        assert (
            f"trace: the forward pass runs as loaded (Python per layer); the traced graph failed: {why}" in server.log
        )
        assert AS_LOADED in server.log and TRACED not in server.log
        texts = _texts()
        assert largest_difference(server.probabilities(texts), plain.probabilities(texts)) <= SAME_ANSWER["float32"]

"""TEXTCLF_PREPACK: a bfloat16 model on CPU is served with its linear layers' weights reordered once for oneDNN,
and answers as the model as loaded does; where the prepacked model fails its check at load, the model as loaded
serves."""

from __future__ import annotations

import json
import re

import pytest
from harness import largest_difference, servers_side_by_side, sitecustomize_env
from sample_data import SAMPLE_TEXTS, make_rows

BFLOAT16_ON_CPU = {"TEXTCLF_DTYPE": "bfloat16", "TEXTCLF_DEVICE": "cpu"}  # auto is float32 on CPUs without bf16
# Probabilities of the same bfloat16 model computed through two oneDNN kernels: equal here to the bit, but oneDNN
# may accumulate in another order on another CPU. A broken layer moves them by tenths.
SAME_ANSWER = 1e-2


def _texts() -> list[str]:
    return list(SAMPLE_TEXTS.values()) + [row["text"] for row in make_rows(20, seed=6)]


@pytest.fixture(scope="module", params=["bert_model_dir", "gpt2_model_dir"])
def prepacked_and_plain(request):
    model_dir = request.getfixturevalue(request.param)  # GPT-2's layers are Conv1D, turned into linear ones
    environments = [{"TEXTCLF_PREPACK": switch, **BFLOAT16_ON_CPU} for switch in ("on", "off")]
    with servers_side_by_side(model_dir, *environments) as servers:
        yield model_dir, servers


def test_prepacked_layers_answer_as_the_model_as_loaded(prepacked_and_plain):
    model_dir, (prepacked, plain) = prepacked_and_plain
    if "prepack: no oneDNN bfloat16 kernels" in prepacked.log:
        pytest.skip("this torch has no oneDNN bfloat16 kernels for this CPU: nothing is prepacked here")
    assert " as bfloat16 (prepacked):" in prepacked.log and " as bfloat16:" in plain.log
    # Every block's layers, GPT-2's Conv1D ones included, not only the classification head.
    layers = int(re.search(r"prepack: (\d+) linear layers prepacked", prepacked.log).group(1))
    config = json.loads((model_dir / "config.json").read_text())
    assert layers >= 4 * config.get("num_hidden_layers", config.get("n_layer", 0)) > 0
    texts = _texts()
    together = prepacked.probabilities(texts)  # one padded batch
    alone = [prepacked.probabilities([text])[0] for text in texts[:6]]
    assert largest_difference(together, plain.probabilities(texts)) <= SAME_ANSWER
    assert largest_difference(alone, together[:6]) <= SAME_ANSWER


def test_a_prepacked_model_that_fails_its_check_is_served_as_loaded(tmp_path, bert_model_dir):
    # A kernel that computes wrongly (here: zeros), stood in for by a sitecustomize that replaces torch's prepacked
    # linear op in the server's processes; the code under test is unchanged.
    wrong_kernel = sitecustomize_env(
        tmp_path / "wrong-prepacked-kernel",
        "import torch\n\n\n"
        "def linear_pointwise(x, weight, bias, *args):\n"
        "    return x.new_zeros((*x.shape[:-1], weight.shape[0]))\n\n\n"
        "torch.ops.mkldnn._linear_pointwise = linear_pointwise\n",
    )
    as_loaded = {"TEXTCLF_PREPACK": "off", **BFLOAT16_ON_CPU}
    with servers_side_by_side(bert_model_dir, {**wrong_kernel, **BFLOAT16_ON_CPU}, as_loaded) as (wrong, plain):
        if "prepack: no oneDNN bfloat16 kernels" in wrong.log:
            pytest.skip("this torch has no oneDNN bfloat16 kernels for this CPU: nothing is prepacked here")
        assert "prepack: linear layers left as loaded, the prepacked model failed its check: logits moved" in wrong.log
        assert " as bfloat16:" in wrong.log and "(prepacked)" not in wrong.log
        texts = _texts()
        assert largest_difference(wrong.probabilities(texts), plain.probabilities(texts)) <= SAME_ANSWER

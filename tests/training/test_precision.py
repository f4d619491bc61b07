"""Precision: bf16 only where the hardware has it; a request the device cannot honour is refused clearly."""

import pytest
import torch
from textclf.errors import UserError
from textclf.training.hyperparameters import parse
from textclf.training.loop import make_optimizer, resolve_precision


def test_auto_is_fp32_on_cpu_and_bf16_is_honoured():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("fp32", cpu) is None


def test_fp16_on_cpu_is_refused_with_a_remedy():
    with pytest.raises(UserError) as error:
        resolve_precision("fp16", torch.device("cpu"))
    assert "needs a GPU" in error.value.cause and "bf16" in error.value.remedy


def test_optimizer_is_fused_adamw_without_decay_on_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    optimizer = make_optimizer(model, parse({"weight_decay": "0.1"}), lr=1e-3)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"]
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and [p.shape for p in decayed["params"]] == [torch.Size([4, 4])]
    assert plain["weight_decay"] == 0.0 and len(plain["params"]) == 3

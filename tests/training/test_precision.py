"""Precision: bf16 only where the hardware has it; a request the device cannot honour is refused clearly."""

import pytest
import torch
from textclf.errors import UserError
from textclf.modeling import cpu_computes_bf16
from textclf.training.hyperparameters import parse
from textclf.training.loop import make_optimizer, resolve_precision

# Trimmed /proc/cpuinfo of two real CPUs: AMD EPYC Zen 3 (no bf16 instructions) and Intel Sapphire Rapids (AMX).
ZEN3 = "processor\t: 0\nmodel name\t: AMD EPYC 7R13\nflags\t\t: fpu sse2 avx avx2 fma sha_ni vaes\n"
SAPPHIRE_RAPIDS = (
    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\n"
    "flags\t\t: fpu avx2 avx512f avx512_vnni amx_bf16 amx_tile amx_int8\n"
)


def test_bf16_instructions_are_read_from_the_cpu_flags(tmp_path):
    for text, native in ((ZEN3, False), (SAPPHIRE_RAPIDS, True), ("flags : avx512f avx512_bf16\n", True)):
        (tmp_path / "cpuinfo").write_text(text)
        assert cpu_computes_bf16(tmp_path / "cpuinfo") is native
    assert cpu_computes_bf16(tmp_path / "missing") is False  # not Linux, or /proc hidden: float32, the safe side


def test_auto_follows_this_cpu_and_explicit_choices_are_honoured():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is (torch.bfloat16 if cpu_computes_bf16() else None)
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

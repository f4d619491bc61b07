"""int8 linear layers for CPU inference: what `serve` runs with TEXTCLF_DTYPE=int8 and what `train` scores with
evaluate_int8=true, one function so that the score is the one the server's answers would get."""

from __future__ import annotations

import logging
import warnings

import torch
from transformers.pytorch_utils import Conv1D

log = logging.getLogger(__name__)


def _conv1d_as_linear(model: torch.nn.Module) -> int:
    """GPT-2 computes with transformers' Conv1D, a linear layer whose weight is stored transposed: each becomes the
    nn.Linear it is, so that int8 quantises GPT-2 as it does BERT. Returns how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                linear = torch.nn.Linear(child.nx, child.nf, device=child.weight.device, dtype=child.weight.dtype)
                linear.weight = torch.nn.Parameter(child.weight.detach().t().contiguous(), requires_grad=False)
                linear.bias = child.bias
                setattr(parent, name, linear)
                replaced += 1
    return replaced


def quantize_linear_layers(model: torch.nn.Module) -> torch.nn.Module:
    """Every linear layer's weights in 8 bits, one scale per output row, and its input quantised per forward pass
    (dynamic quantisation, CPU only), in place. Worth it where float32 is slow: on a CPU without bf16 instructions a
    small batch's pass is bound by reading the float32 weights (README, "Process model"). torch marks this API
    deprecated but keeps it in the pinned torch, and the serving and training tests run it."""
    converted = _conv1d_as_linear(model)
    layers = sum(isinstance(module, torch.nn.Linear) for module in model.modules())
    log.info("int8: %d linear layers quantised (%d of them converted from Conv1D)", layers, converted)
    with warnings.catch_warnings():  # torch's notices that eager-mode quantisation is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        # In place: a copy would hold the float32 weights twice while the worker loads.
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)

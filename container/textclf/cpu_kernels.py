"""The linear layers' kernels for inference on CPU, where most of a small batch's time goes.

- bfloat16: each weight reordered once, at load, into the blocked layout oneDNN's kernels read (prepack), instead
  of on every call; the answers do not change. What `serve` runs on CPU in bfloat16, unless TEXTCLF_PREPACK=off.
- int8: weights in 8 bits (opt-in; labels may change). What `serve` runs with TEXTCLF_DTYPE=int8 and what `train`
  scores with evaluate_int8=true: one function, so that the score is the one the server's answers would get.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable

import torch
from transformers.pytorch_utils import Conv1D

log = logging.getLogger(__name__)

# How far a prepacked model's logits may stray from the plain model's on the check at load: oneDNN may pick another
# kernel for the packed weight, and a bfloat16 sum of a few hundred terms differs from another order's by about
# this much. A wrong result (a layer that reads its weight elsewhere, say) is far outside it.
PREPACK_TOLERANCE = 2e-2


Swapped = list[tuple[torch.nn.Module, str, torch.nn.Module]]  # (parent, attribute name, the layer it held)


def _swap_layers(
    model: torch.nn.Module,
    wanted: Callable[[torch.nn.Module], bool],
    replace: Callable[[torch.nn.Module], torch.nn.Module],
) -> Swapped:
    """Every layer of `model` that is `wanted`, replaced in its parent by `replace(layer)`, in place; returns what was
    swapped, so that a caller can put the layers back. All or nothing: if `replace` raises, the model is as it was."""
    swapped: Swapped = []
    try:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if wanted(child):
                    setattr(parent, name, replace(child))
                    swapped.append((parent, name, child))
    except Exception:
        _put_back(swapped)
        raise
    return swapped


def _put_back(swapped: Swapped) -> None:
    for parent, name, layer in swapped:
        setattr(parent, name, layer)


def _linear_from_conv1d(conv: Conv1D) -> torch.nn.Linear:
    linear = torch.nn.Linear(conv.nx, conv.nf, device=conv.weight.device, dtype=conv.weight.dtype)
    linear.weight = torch.nn.Parameter(conv.weight.detach().t().contiguous(), requires_grad=False)
    linear.bias = conv.bias
    return linear


def _conv1d_as_linear(model: torch.nn.Module) -> int:
    """GPT-2 computes with transformers' Conv1D, a linear layer whose weight is stored transposed: each becomes the
    nn.Linear it is, so that int8 and prepacking treat GPT-2 as they treat BERT. Returns how many were replaced."""
    return len(_swap_layers(model, lambda layer: isinstance(layer, Conv1D), _linear_from_conv1d))


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


def _packed_linear(x: torch.Tensor, packed_weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    no_scalars: list[number | None] = []  # noqa: F821 - TorchScript's name for the op's Scalar type
    return torch.ops.mkldnn._linear_pointwise(x, packed_weight, bias, "none", no_scalars, "")


@functools.cache
def _scripted_packed_linear() -> torch.jit.ScriptFunction:
    """The prepacked op as TorchScript, compiled on first use: torch.jit.trace cannot record the op's empty
    `Scalar?[]` argument, but records a call to this function (textclf.tracing traces the served forward pass)."""
    with warnings.catch_warnings():  # torch's notice that TorchScript is deprecated; tracing.py says why it is used
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(_packed_linear)


class PrepackedLinear(torch.nn.Module):
    """A bfloat16 nn.Linear for CPU inference whose weight oneDNN reordered once. A plain layer's weight is
    reordered on every call: for the few rows of a small batch that cost as much as the multiplication (MiniLM's
    384x1536 layer, 8 rows: 94 us plain, 42 us prepacked, one thread, AMX). These are the ops torch's own compiler
    emits for frozen CPU models (mkldnn::_reorder_linear_weight, mkldnn::_linear_pointwise), called directly."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # Buffers, so that a trace reads them from the module (it cannot hold oneDNN's opaque layout as a constant);
        # not in the state dict: the packed tensor is for this module's op only.
        packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.register_buffer("packed_weight", packed, persistent=False)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            return _scripted_packed_linear()(x, self.packed_weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def prepack_linear_layers(model: torch.nn.Module, logits: Callable[[], torch.Tensor]) -> bool:
    """Every nn.Linear of a bfloat16 CPU model prepacked, in place, if the model then gives the logits it gave before
    (`logits` computes them with the model as it is at the time): any layer whose weight the model reads elsewhere,
    or a torch without oneDNN, leaves the model as it was, with a warning. Returns whether it was prepacked."""
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        log.warning("prepack: no oneDNN bfloat16 kernels for this CPU in this torch; linear layers left as loaded")
        return False
    before = logits()
    converted = _conv1d_as_linear(model)
    swapped: Swapped = []
    try:
        # Exactly nn.Linear: subclasses (attention's out_proj) have their weights read by their owners.
        swapped = _swap_layers(model, lambda layer: type(layer) is torch.nn.Linear, PrepackedLinear)
        after = logits()
        if not torch.allclose(before, after, rtol=PREPACK_TOLERANCE, atol=PREPACK_TOLERANCE):
            raise ValueError(f"logits moved by {(before - after).abs().max().item():.3g}")
    except Exception as exc:  # noqa: BLE001 - an optimisation: the model as loaded still answers
        _put_back(swapped)
        log.warning("prepack: linear layers left as loaded, the prepacked model failed its check: %s", exc)
        return False
    log.info("prepack: %d linear layers prepacked for oneDNN (%d converted from Conv1D)", len(swapped), converted)
    return True

"""Model FLOPs utilisation (MFU) for the GPU half of the benchmark: useful FLOPs per second over the device's dense
bf16 peak. Counted per real (non-pad) token, so padding a batch never raises it.

For a transformer encoder or decoder with N matmul parameters (every Linear weight, the embeddings excluded), L
layers, hidden width d, and s tokens of context per sequence:
    training  ~ 6*N + 12*L*s*d FLOPs per token (forward 2N + 4Lsd for the matmuls and attention, backward twice that)
    inference ~ 2*N + 4*L*s*d FLOPs per token
Not run yet: no GPU was lent to the task that wrote this; the shapes to run are BERT-base (L=12, d=768) and
GPT-2 small (L=12, d=768) at s=128 in bf16, randomly initialised (speed does not depend on the weights).
"""

from __future__ import annotations


def matmul_parameters(model) -> int:
    """Weights of every Linear layer (what the 2N counts); embeddings and norms do no matmuls per token."""
    import torch

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def training_flops_per_token(matmul_params: int, layers: int, context: int, width: int) -> float:
    return 6 * matmul_params + 12 * layers * context * width


def inference_flops_per_token(matmul_params: int, layers: int, context: int, width: int) -> float:
    return 2 * matmul_params + 4 * layers * context * width


def mfu(real_tokens_per_s: float, flops_per_token: float, peak_flops: float) -> float:
    """Share of the device's dense peak (e.g. H100 SXM bf16: 989e12) spent on the model's own arithmetic."""
    return real_tokens_per_s * flops_per_token / peak_flops

"""The served forward pass recorded once, at load, as a TorchScript graph, so that a batch runs without Python.

transformers' modules spend Python time on every layer of every call (hooks, output records, mask helpers,
attention dispatch): for a short text on one CPU thread that is as long as the arithmetic. MiniLM in bfloat16,
prepacked, one text of 8 tokens on one thread: 9.9 ms through the modules, 6.6 ms traced (AMD EPYC with
AVX512_BF16; the same kernels run, and the logits were equal to the bit).

A trace records the operations one call ran, with sizes kept symbolic; what it cannot follow is Python that
decides on the data. transformers writes its mask helpers for tracing (they never drop a mask because it is all
ones while a trace records), and a traced graph must still answer as the model does: `trace_forward` checks it at
load on batches of other sizes than the one it recorded, padded and not, and gives up, with a warning, where
they differ or tracing fails (an architecture the tracer cannot follow). TorchScript is deprecated in favour of
torch.compile, which costs tens of seconds of compilation per shape at start; until torch drops it, this gives
most of the gain for a fraction of a second.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence

import torch

log = logging.getLogger(__name__)

Tensors = dict[str, torch.Tensor]  # one padded batch: input_ids, attention_mask, and token_type_ids where used

# How far the traced graph's logits may be from the model's: it runs the same kernels on the same shapes, so they
# agree to the bit where tried; this leaves room for a kernel that sums in another order, and none for a mask or
# position the graph got wrong (a padded text's logits move by far more). In bfloat16 on a CPU without bf16
# instructions GPT-2's graph rounded one logit a unit in the last place apart (2**-7 near 1): a few such units
# are allowed in the precision the logits come in.
TRACE_TOLERANCE = 1e-3
ROUNDING_UNITS = 4


def tolerance(dtype: torch.dtype) -> float:
    """For logits of `dtype` (always floating point: an int8 model computes float32 logits)."""
    return max(TRACE_TOLERANCE, ROUNDING_UNITS * torch.finfo(dtype).eps)


class _Positional(torch.nn.Module):
    """`forward(tensors)` as a module of positional tensors, the form torch.jit.trace records."""

    def __init__(self, model: torch.nn.Module, forward: Callable[[torch.nn.Module, Tensors], torch.Tensor], keys):
        super().__init__()
        self.model, self.forward_of, self.keys = model, forward, tuple(keys)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.forward_of(self.model, dict(zip(self.keys, tensors, strict=True)))


class TracedForward:
    """The recorded graph, called as the model's forward is: with a batch's tensors by name."""

    def __init__(self, graph: torch.jit.ScriptModule, keys: Sequence[str]) -> None:
        self.graph, self.keys = graph, tuple(keys)

    def __call__(self, tensors: Tensors) -> torch.Tensor:
        return self.graph(*(tensors[key] for key in self.keys))


def trace_forward(
    model: torch.nn.Module,
    forward: Callable[[torch.nn.Module, Tensors], torch.Tensor],
    example: Tensors,
    probes: Sequence[Tensors],
) -> TracedForward | None:
    """`forward(model, tensors)` (logits of one padded batch) traced on `example`, if the graph then gives the
    model's logits on every probe; else None, with a warning saying why: the caller runs the model as it is."""
    started = time.perf_counter()
    keys = tuple(example)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch's notices that TorchScript is deprecated, and the tracer's about Python values it records as
            # constants: the probes below are what says whether the graph holds.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            graph = torch.jit.trace(
                _Positional(model, forward, keys), tuple(example.values()), check_trace=False, strict=False
            )
        traced = TracedForward(graph, keys)
        with torch.inference_mode():
            for probe in probes:
                if tuple(probe) != keys:
                    raise ValueError(f"a probe has inputs {tuple(probe)}, the trace {keys}")
                expected, got = forward(model, probe), traced(probe)
                allowed = tolerance(expected.dtype)
                if expected.shape != got.shape or not torch.allclose(
                    expected.float(), got.float(), rtol=allowed, atol=allowed
                ):
                    shape = "x".join(map(str, probe["input_ids"].shape))
                    if expected.shape == got.shape:
                        how = f"by {(expected.float() - got.float()).abs().max().item():.3g}"
                    else:
                        how = f"shape {tuple(got.shape)} for {tuple(expected.shape)}"
                    raise ValueError(f"its logits differ from the model's on a batch of {shape} tokens ({how})")
    except Exception as exc:  # noqa: BLE001 - an optimisation: the model itself still answers
        log.warning("trace: the forward pass runs as loaded (Python per layer); the traced graph failed: %s", exc)
        return None
    elapsed = time.perf_counter() - started
    log.info("trace: forward pass recorded, and checked on %d batches, in %.2f s", len(probes), elapsed)
    return traced

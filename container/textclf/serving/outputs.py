"""From one text's logits to its answer: the activation, then the labels to report (pure Python, no torch).

Shapes mirror the transformers text-classification pipeline: `{"label", "score"}` for the best label when
`top_k` is not given; a list, best first, when it is (`null`: every label). Multi-label models, without `top_k`,
answer the list of labels whose sigmoid score reaches the threshold saved at training time (possibly empty).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .inputs import Parameters, Result


@dataclass(frozen=True)
class LabelSpace:
    labels: tuple[str, ...]
    multi_label: bool
    threshold: float  # multi-label: the one saved at training time

    @property
    def default_function(self) -> str:
        return "sigmoid" if self.multi_label or len(self.labels) == 1 else "softmax"


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def activate(logits: Sequence[float], function: str) -> list[float]:
    if function == "softmax":
        top = max(logits)
        exps = [math.exp(x - top) for x in logits]
        total = sum(exps)
        return [e / total for e in exps]
    if function == "sigmoid":
        return [_sigmoid(x) for x in logits]
    return [float(x) for x in logits]


def format_result(logits: Sequence[float], space: LabelSpace, params: Parameters) -> Result:
    function = params.function_to_apply or space.default_function
    scores = activate(logits, function)
    ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)

    def entry(i: int) -> dict:
        return {"label": space.labels[i], "score": scores[i]}

    if params.top_k_given:
        count = len(ranked) if params.top_k is None else min(params.top_k, len(ranked))
        return [entry(i) for i in ranked[:count]]
    if space.multi_label:
        # The model's decision is sigmoid(logit) >= threshold, whatever function the scores are reported in.
        return [entry(i) for i in ranked if _sigmoid(logits[i]) >= space.threshold]
    return entry(ranked[0])

"""The one object the HTTP layer talks to: decoded inputs in, formatted answers out.

It tokenises in the request thread (through the predictor), hands token ids to the runner (the MicroBatcher, or
the DirectRunner when batching is off), and formats each text's logits with that text's parameters. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .inputs import DecodedRequest, Result
from .outputs import LabelSpace, format_result


@dataclass
class Inference:
    predictor: Any  # textclf.serving.predictor.Predictor, or a test double with encode() and info
    runner: Any  # MicroBatcher or DirectRunner: predict(payloads, lengths, timeout) -> (results, largest batch)
    timeout_s: float

    def __post_init__(self) -> None:
        info = self.predictor.info
        self.space = LabelSpace(tuple(info.labels), info.multi_label, info.threshold)
        self.text_pair = info.text_pair

    def classify(self, request: DecodedRequest) -> tuple[list[Result], int]:
        """Answers in input order, and the largest batch any of the texts rode in."""
        encoded: list = [None] * len(request.inputs)
        for truncation in (True, False):
            indices = [i for i, p in enumerate(request.parameters) if p.truncation is truncation]
            if not indices:
                continue
            if len(indices) == len(request.inputs):
                encoded = self.predictor.encode(request.inputs, truncation)
                break
            for i in indices:  # mixed settings (JSON Lines lines with their own parameters): one at a time
                encoded[i] = self.predictor.encode([request.inputs[i]], truncation, offset=i)[0]
        lengths = [len(features["input_ids"]) for features in encoded]
        logits, largest = self.runner.predict(encoded, lengths, self.timeout_s)
        results = [
            format_result(row, self.space, params) for row, params in zip(logits, request.parameters, strict=True)
        ]
        return results, largest

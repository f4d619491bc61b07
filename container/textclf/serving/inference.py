"""The one object the HTTP layer talks to: decoded inputs in, formatted answers out.

It tokenises in the request thread (through the predictor), refuses a request over its work bound, hands token ids
to the runner (the MicroBatcher, or the DirectRunner when batching is off) with what is left of the request's
time, and formats each text's logits with that text's parameters. No torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..windows import aggregate, owners_of
from .errors import InferenceTimeout
from .inputs import DecodedRequest, Result
from .limits import RequestLimits
from .outputs import LabelSpace, format_result


@dataclass
class Inference:
    predictor: Any  # textclf.serving.predictor.Predictor, or a test double with encode() and info
    runner: Any  # MicroBatcher or DirectRunner: predict(payloads, lengths, timeout) -> (results, largest batch)
    timeout_s: float | None  # SAGEMAKER_MODEL_SERVER_TIMEOUT, counted from the request's arrival; None: no limit
    limits: RequestLimits | None = None  # None: unbounded (tests with fake predictors)

    def __post_init__(self) -> None:
        info = self.predictor.info
        self.space = LabelSpace(tuple(info.labels), info.multi_label, info.threshold)
        self.text_pair = info.text_pair

    def classify(self, request: DecodedRequest, arrived: float | None = None) -> tuple[list[Result], int]:
        """Answers in input order, and the largest batch any of the texts rode in. `arrived` (time.perf_counter()
        when the request came in) starts the time limit's clock; by default it starts now."""
        started = time.perf_counter() if arrived is None else arrived
        windows = self._encode(request)
        # Every window is one row for the runner: windows of one text share batches with other texts, and the
        # batch budget and the request's token bound count them all.
        encoded = [features for per_text in windows for features in per_text]
        lengths = [len(features["input_ids"]) for features in encoded]
        if self.limits is not None:
            self.limits.check(lengths, len(windows))
        left = None if self.timeout_s is None else started + self.timeout_s - time.perf_counter()
        if left is not None and left <= 0:
            raise InferenceTimeout(f"Decoding and tokenising took the whole {self.timeout_s:g} s time limit.")
        logits, largest = self.runner.predict(encoded, lengths, left)
        if len(encoded) > len(windows):
            logits = aggregate(logits, owners_of(windows), self.space.multi_label)
        results = [
            format_result(row, self.space, params) for row, params in zip(logits, request.parameters, strict=True)
        ]
        return results, largest

    def _encode(self, request: DecodedRequest) -> list[list]:
        """Each input's windows (one for a text that fits max_length), tokenised with its own truncation setting."""
        windowed = self.predictor.info.long_text.name != "truncate"  # else encode() alone: also test doubles
        encode = self.predictor.encode_windows if windowed else self.predictor.encode
        encoded: list = [None] * len(request.inputs)
        for truncation in (True, False):
            indices = [i for i, p in enumerate(request.parameters) if p.truncation is truncation]
            if not indices:
                continue
            if len(indices) == len(request.inputs):
                encoded = encode(request.inputs, truncation)
                break
            for i in indices:  # mixed settings (JSON Lines lines with their own parameters): one at a time
                encoded[i] = encode([request.inputs[i]], truncation, offset=i)[0]
        return encoded if windowed else [[features] for features in encoded]

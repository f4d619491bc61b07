"""How much work one request may ask for, so that it is answered before SageMaker gives up on it.

SageMaker waits SAGEMAKER_MODEL_SERVER_TIMEOUT seconds (60 by default) for an answer. A payload inside the size
limit can still hold more texts than the model can score in that time (100,000 short texts took 69 s on two
cores), and the caller would get a time-out after a minute instead of a refusal at once. So each request's token
count (what the forward passes cost) is bounded, from the throughput measured at warm-up unless
TEXTCLF_MAX_REQUEST_TOKENS fixes it, and batch transform is told a payload size that fits that bound.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..contract import ServingEnvironment
from .errors import PayloadTooLarge
from .settings import ServingSettings

log = logging.getLogger("textclf.serving")

# A lone request may use this share of the time limit: the rest is for waiting behind others, decoding, answering.
TIME_SHARE = 0.5
# Requests in flight per worker that batch transform is told it may send (GET /execution-parameters).
TRANSFORMS_PER_WORKER = 2
# The fewest payload bytes a token comes from: a one-letter CSV row is two bytes and three tokens with [CLS] and
# [SEP]. Sizing the advertised payload with it keeps even such rows inside the token bound.
BYTES_PER_TOKEN_FLOOR = 1
MB = 1024 * 1024
# After a request of this many texts, freed heap goes back to the system (measured: 100,000 short texts left the
# worker 160 MB larger each time without it; with it, a few MB). Smaller requests skip the cost of the trim.
LARGE_REQUEST_TEXTS = 10_000


@dataclass(frozen=True)
class RequestLimits:
    max_tokens: int  # tokens (special tokens included) of all texts of one request

    def check(self, lengths: Sequence[int], texts: int | None = None) -> None:
        """`lengths`: the tokens of every window the model reads (one per text unless long texts are windowed)."""
        total = sum(lengths)
        if total > self.max_tokens:
            texts = len(lengths) if texts is None else texts
            windows = f" ({len(lengths)} windows)" if len(lengths) != texts else ""
            raise PayloadTooLarge(
                f"The request's {texts} texts{windows} hold {total} tokens; this server scores at most "
                f"{self.max_tokens} tokens per request within its time limit (TEXTCLF_MAX_REQUEST_TOKENS). "
                "Send fewer texts per request, or raise TEXTCLF_MAX_REQUEST_TOKENS with SAGEMAKER_MODEL_SERVER_TIMEOUT."
            )


def request_limits(env: ServingEnvironment, settings: ServingSettings, tokens_per_second: float) -> RequestLimits:
    """The setting when given; else what this hardware scores in its share of the time limit, with the batch
    transform concurrency we advertise sharing the worker."""
    if settings.max_request_tokens is not None:
        return RequestLimits(settings.max_request_tokens)
    budget = tokens_per_second * env.timeout_seconds * TIME_SHARE / TRANSFORMS_PER_WORKER
    return RequestLimits(max(settings.max_batch_tokens, int(budget)))


def advertised_payload_mb(env: ServingEnvironment, limits: RequestLimits | None) -> int:
    """MaxPayloadInMB for /execution-parameters: the job's own limit, lowered so a full payload fits the token
    bound (at least 1 MB, the smallest SageMaker accepts for multi-record batches)."""
    if limits is None:
        return env.max_payload_mb
    fits = limits.max_tokens * BYTES_PER_TOKEN_FLOOR // MB
    return max(1, min(env.max_payload_mb, fits))


def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def return_memory() -> None:
    """Give freed heap pages back to the system: glibc keeps them otherwise, and a worker that once served a very
    large request would hold that memory from then on."""
    if _TRIM is not None:
        _TRIM(0)

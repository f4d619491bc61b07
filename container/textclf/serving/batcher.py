"""Dynamic batching inside one worker: texts of concurrent requests share forward passes.

Request threads submit their texts (already tokenised: only the token count matters here) and wait. Runner threads
(one per core the worker owns on CPU, one per GPU) share one queue: a free runner takes the oldest pending texts,
groups them by length so padding stays small, cuts them into batches bounded by a text count and a padded-token
budget, runs the batch holding the oldest text and leaves the rest pending for whichever runner is free next. Every
request gets exactly its own results. A runner waits at most `max_delay_s` for company when a batch is not full.
Knows nothing of torch: `run_batch` does, and it must be safe to call from several threads at once (a torch
forward pass in inference mode is; each runs on its caller's thread when torch has one intra-op thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InferenceTimeout

log = logging.getLogger("textclf.serving.batcher")

RunBatch = Callable[[list[Any]], Sequence[Any]]


@dataclass(eq=False)
class _Ticket:
    """One request's share: its results arrive by index; `done` is set when the last one lands."""

    size: int
    results: list = field(default_factory=list)
    remaining: int = 0
    error: BaseException | None = None
    cancelled: bool = False
    largest_batch: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.results = [None] * self.size
        self.remaining = self.size


@dataclass(eq=False)
class _Item:
    ticket: _Ticket
    index: int
    payload: Any
    length: int
    arrived: float


# A forward pass costs about as much as this many padded tokens on top of its tokens (MiniLM on 2 CPU cores: ~8 ms
# of fixed cost, ~0.12 ms per token). Padding beyond it costs more than running a second, shorter batch: real text
# mixes 10- and 120-token quotations, and one long text had made every short one in its batch pay for its length.
# Not derived per machine: on an AMD EPYC with AVX512-BF16 a bare pass's fixed part is worth only 17 tokens (2.2 ms,
# 0.128 ms per token, one thread), yet splitting at 17 or 30 held no higher arrival rate than 64 (open loop at
# 160-230 requests/s, interleaved). Likely because a bare pass understates one in the server, where collating and
# the Python around each pass share the cores with the request threads (not measured apart).
SPLIT_PADDING_TOKENS = 64


def plan_batches(lengths: Sequence[int], max_batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices of `lengths` cut into batches: sorted by length, each at most `max_batch_size` texts, at most
    `max_batch_tokens` padded tokens (texts x longest) and at most SPLIT_PADDING_TOKENS of padding; a text over the
    budget alone still gets a batch."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order:
        # Ascending order: the newcomer is the longest, so the padded size is its length times the count.
        padded = lengths[i] * (len(current) + 1)
        if current and (
            len(current) >= max_batch_size
            or padded > max_batch_tokens
            or padded - real - lengths[i] > SPLIT_PADDING_TOKENS
        ):
            batches.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        batches.append(current)
    return batches


class BatchStats:
    """Counters for tests, the stats endpoint and the bench: how large batches really were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches = 0
        self.texts = 0
        self.shared_batches = 0  # batches holding texts of more than one request
        self.sizes: Counter[int] = Counter()

    def record(self, size: int, requests: int) -> None:
        with self._lock:
            self.batches += 1
            self.texts += size
            self.shared_batches += requests > 1
            self.sizes[size] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "batches": self.batches,
                "texts": self.texts,
                "shared_batches": self.shared_batches,
                "largest_batch": max(self.sizes, default=0),
                "mean_batch": round(self.texts / self.batches, 2) if self.batches else 0.0,
                "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())},
            }


class DirectRunner:
    """TEXTCLF_BATCHING=off: each request runs its own texts in its own thread, batched only among themselves, at
    most `runners` requests at a time (more would only share the same cores)."""

    def __init__(self, run_batch: RunBatch, max_batch_size: int, max_batch_tokens: int, runners: int = 1) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.stats = BatchStats()
        self._slots = threading.BoundedSemaphore(runners)

    def predict(
        self, payloads: Sequence[Any], lengths: Sequence[int], timeout: float | None = None
    ) -> tuple[list, int]:
        results: list = [None] * len(payloads)
        largest = 0
        for batch in plan_batches(lengths, self.max_batch_size, self.max_batch_tokens):
            with self._slots:
                outputs = self.run_batch([payloads[i] for i in batch])
            for i, output in zip(batch, outputs, strict=True):
                results[i] = output
            self.stats.record(len(batch), 1)
            largest = max(largest, len(batch))
        return results, largest


class MicroBatcher:
    """Runner threads that pack the pending texts of all requests into forward passes, one shared queue.

    One queue for all the worker's cores, rather than a process per core each with its own: a text waits only until
    any runner is free, so a long text holding one core no longer holds up the texts that arrived behind it (with
    a process per core, the kernel hands each connection to whichever process accepts first, busy or not)."""

    def __init__(
        self,
        run_batch: RunBatch,
        max_batch_size: int = 32,
        max_batch_tokens: int = 8192,
        max_delay_s: float = 0.0,
        window: int | None = None,
        runners: int = 1,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_delay_s = max_delay_s
        # How many pending texts (oldest first) one round sorts by length: wide enough to group well, narrow enough
        # that a request arriving behind a very large one is not kept waiting for all of it.
        self.window = window or max_batch_size * 4
        self.stats = BatchStats()
        self._pending: deque[_Item] = deque()
        self._cond = threading.Condition()
        # Runners deliver to the same request when its texts ride in batches run at the same time.
        self._delivery = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, name=f"textclf-runner-{i}", daemon=True) for i in range(runners)
        ]
        for thread in self._threads:
            thread.start()

    def predict(
        self, payloads: Sequence[Any], lengths: Sequence[int], timeout: float | None = None
    ) -> tuple[list, int]:
        """Results for `payloads` in their order, and the largest batch they rode in. Blocks the calling thread."""
        ticket = _Ticket(len(payloads))
        if not payloads:
            return [], 0
        now = time.monotonic()
        with self._cond:
            self._pending.extend(
                _Item(ticket, i, p, n, now) for i, (p, n) in enumerate(zip(payloads, lengths, strict=True))
            )
            self._cond.notify()
        if not ticket.done.wait(timeout):
            ticket.cancelled = True  # the batcher skips what is still pending for it
            raise InferenceTimeout(
                f"Inference did not finish within the {timeout:.1f} s left of the request's time limit "
                "(SAGEMAKER_MODEL_SERVER_TIMEOUT)."
            )
        if ticket.error is not None:
            raise ticket.error
        return ticket.results, ticket.largest_batch

    # --- the runner threads ----------------------------------------------------------------------------------------

    def _take(self) -> list[_Item]:
        """Wait for work, then for company (up to max_delay after the oldest arrival); then cut the oldest `window`
        pending texts into batches and take the one holding the oldest text. The others go back to the front of
        the queue, in their order, for the next free runner."""
        with self._cond:
            while True:
                while not self._pending:
                    self._cond.wait()
                deadline = self._pending[0].arrived + self.max_delay_s
                while True:
                    full = len(self._pending) >= self.max_batch_size
                    heavy = sum(item.length for item in self._pending) >= self.max_batch_tokens
                    remaining = deadline - time.monotonic()
                    if full or heavy or remaining <= 0 or not self._pending:
                        break
                    self._cond.wait(remaining)
                window: list[_Item] = []
                while self._pending and len(window) < self.window:
                    item = self._pending.popleft()
                    if not item.ticket.cancelled:
                        window.append(item)
                if window:
                    break
            batches = plan_batches([item.length for item in window], self.max_batch_size, self.max_batch_tokens)
            oldest = next(batch for batch in batches if 0 in batch)
            taken = set(oldest)
            self._pending.extendleft(reversed([item for i, item in enumerate(window) if i not in taken]))
            if self._pending:
                self._cond.notify()  # an idle runner may take the next batch now
            return [window[i] for i in oldest]

    def _loop(self) -> None:
        while True:
            self._run(self._take())

    def _run(self, items: list[_Item]) -> None:
        # Skip texts whose request gave up (timed out) or already failed in another batch.
        items = [item for item in items if not item.ticket.cancelled and item.ticket.error is None]
        if not items:
            return
        started = time.monotonic()
        try:
            outputs = self.run_batch([item.payload for item in items])
            if len(outputs) != len(items):
                raise RuntimeError(f"run_batch returned {len(outputs)} results for {len(items)} inputs")
        except BaseException as exc:  # every waiting request learns of it; the thread lives on
            log.exception("batch of %d texts failed", len(items))
            with self._delivery:
                for ticket in {item.ticket for item in items}:
                    ticket.error = exc
                    ticket.done.set()
            return
        tickets = {item.ticket for item in items}
        self.stats.record(len(items), len(tickets))
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "batch of %d texts from %d requests, %d padded tokens, %.1f ms",
                len(items),
                len(tickets),
                len(items) * max(item.length for item in items),
                (time.monotonic() - started) * 1000,
            )
        with self._delivery:
            for item, output in zip(items, outputs, strict=True):
                ticket = item.ticket
                ticket.results[item.index] = output
                ticket.largest_batch = max(ticket.largest_batch, len(items))
                ticket.remaining -= 1
                if ticket.remaining == 0 and ticket.error is None:
                    ticket.done.set()

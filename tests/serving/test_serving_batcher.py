"""The MicroBatcher with a fake model: bounds, length grouping, each request its own results, failures."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from textclf.serving.batcher import DirectRunner, MicroBatcher, plan_batches
from textclf.serving.errors import InferenceTimeout


class FakeModel:
    """run_batch doubles each payload, after a pause, and records every batch it saw."""

    def __init__(self, pause: float = 0.01) -> None:
        self.pause = pause
        self.batches: list[list[tuple[str, int]]] = []
        self.lock = threading.Lock()

    def __call__(self, payloads: list) -> list:
        time.sleep(self.pause)
        with self.lock:
            self.batches.append(list(payloads))
        return [(name, value * 2) for name, value in payloads]


def test_plan_batches_sorts_by_length_and_respects_both_bounds():
    lengths = [5, 50, 6, 7, 48, 51, 200, 4]
    batches = plan_batches(lengths, max_batch_size=3, max_batch_tokens=120)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        assert sizes == sorted(sizes) and len(batch) <= 3
        assert len(batch) == 1 or max(sizes) * len(batch) <= 120
    assert [lengths[i] for i in batches[0]] == [4, 5, 6]
    assert [[lengths[i] for i in b] for b in batches][-1] == [200]  # over the budget alone: still served


def test_plan_batches_keeps_short_texts_out_of_a_long_texts_padding():
    # Real requests: seven short quotations and one long one. Padded together, each short text would cost as much
    # as the long one; two passes cost less.
    lengths = [12, 9, 120, 11, 10, 14, 8, 13]
    batches = plan_batches(lengths, max_batch_size=32, max_batch_tokens=8192)
    assert [[lengths[i] for i in b] for b in batches] == [[8, 9, 10, 11, 12, 13, 14], [120]]
    # Lengths close together still share one pass, however many.
    assert len(plan_batches([30 + i % 3 for i in range(32)], max_batch_size=32, max_batch_tokens=8192)) == 1


def test_concurrent_requests_share_batches_and_get_exactly_their_results():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch_size=8, max_batch_tokens=1000, max_delay_s=0.02)

    def client(c: int) -> tuple[int, list]:
        payloads = [(f"c{c}", c * 100 + k) for k in range(c % 4 + 1)]
        results, largest = batcher.predict(payloads, [10 + k for k in range(len(payloads))], timeout=10)
        return c, results, largest

    with ThreadPoolExecutor(24) as pool:
        outcomes = list(pool.map(client, range(48)))
    for c, results, _ in outcomes:
        assert results == [(f"c{c}", (c * 100 + k) * 2) for k in range(c % 4 + 1)]
    assert max(len(b) for b in model.batches) <= 8
    assert any(len({name for name, _ in b}) > 1 for b in model.batches), "no batch mixed two requests"
    assert max(largest for _, _, largest in outcomes) > 1
    stats = batcher.stats.snapshot()
    assert stats["texts"] == sum(c % 4 + 1 for c in range(48)) and stats["shared_batches"] > 0


def test_token_budget_and_length_groups_inside_one_window():
    model = FakeModel(pause=0)
    batcher = MicroBatcher(model, max_batch_size=16, max_batch_tokens=100, max_delay_s=0.05)
    lengths = [10, 40, 11, 39, 12, 41]
    payloads = [(str(n), n) for n in lengths]
    results, _ = batcher.predict(payloads, lengths, timeout=5)
    assert results == [(str(n), n * 2) for n in lengths]
    grouped = [sorted(v for _, v in batch) for batch in model.batches]
    assert grouped == [[10, 11, 12], [39, 40], [41]]  # short texts together, long ones together, <= 100 tokens


def test_a_failing_batch_fails_its_requests_only_and_the_batcher_lives_on():
    calls = []

    def flaky(payloads: list) -> list:
        calls.append(payloads)
        if any(p == "boom" for p in payloads):
            raise RuntimeError("model exploded")
        return [p.upper() for p in payloads]

    batcher = MicroBatcher(flaky, max_batch_size=4, max_delay_s=0)
    with pytest.raises(RuntimeError, match="model exploded"):
        batcher.predict(["boom"], [3], timeout=5)
    assert batcher.predict(["ok", "fine"], [2, 4], timeout=5)[0] == ["OK", "FINE"]


def test_a_request_that_times_out_is_dropped_from_the_queue():
    gate = threading.Event()
    seen = []

    def slow(payloads: list) -> list:
        seen.extend(payloads)
        gate.wait(5)
        return payloads

    batcher = MicroBatcher(slow, max_batch_size=1, max_delay_s=0)
    blocker = threading.Thread(target=batcher.predict, args=(["first"], [1], 10))
    blocker.start()
    time.sleep(0.1)
    with pytest.raises(InferenceTimeout, match="did not finish within"):
        batcher.predict(["late"], [1], timeout=0.2)
    gate.set()
    blocker.join()
    assert batcher.predict(["next"], [1], timeout=5)[0] == ["next"]
    assert "late" not in seen


def test_direct_runner_batches_one_request_alone():
    model = FakeModel(pause=0)
    runner = DirectRunner(model, max_batch_size=2, max_batch_tokens=1000)
    results, largest = runner.predict([("a", 1), ("b", 2), ("c", 3)], [5, 1, 3])
    assert results == [("a", 2), ("b", 4), ("c", 6)] and largest == 2
    assert runner.stats.snapshot()["batches"] == 2


def _long_pass_in_flight(runners: int):
    """A batcher with one runner held inside a long text's pass until the returned gate is set."""
    gate = threading.Event()

    def model(payloads: list) -> list:
        if "long" in payloads:
            gate.wait(10)
        return payloads

    batcher = MicroBatcher(model, max_batch_size=8, max_delay_s=0, runners=runners)
    long_request = ThreadPoolExecutor(1).submit(batcher.predict, ["long"], [120], 15)
    time.sleep(0.1)
    return batcher, gate, long_request


def test_runners_share_one_queue_so_a_long_pass_holds_up_only_its_own_texts():
    # A short text that arrives while one runner is inside a long pass is answered by the other.
    batcher, gate, long_request = _long_pass_in_flight(runners=2)
    assert batcher.predict(["short"], [8], timeout=2)[0] == ["short"]
    assert not long_request.done()
    gate.set()
    assert long_request.result(timeout=5)[0] == ["long"]


def test_one_runner_keeps_its_queue_in_order():
    # The contrast to the test above: with one runner the short text waits for the long pass (and here times out).
    batcher, gate, long_request = _long_pass_in_flight(runners=1)
    with pytest.raises(InferenceTimeout):
        batcher.predict(["short"], [8], timeout=0.5)
    gate.set()
    assert long_request.result(timeout=5)[0] == ["long"]


def test_a_request_split_across_batches_that_run_at_once_gets_all_its_results():
    # Short and long texts of every request go to different batches; a barrier makes the first two batches run at
    # the same time (two runners), and then requests receive results from two threads at once.
    together = threading.Barrier(2, timeout=5)
    model = FakeModel(pause=0.005)
    calls = itertools.count()

    def concurrent(payloads: list) -> list:
        if next(calls) < 2:
            together.wait()
        return model(payloads)

    batcher = MicroBatcher(concurrent, max_batch_size=4, max_batch_tokens=10_000, max_delay_s=0.01, runners=2)

    def client(c: int) -> list:
        payloads = [(f"c{c}", c * 10 + k) for k in range(4)]
        return batcher.predict(payloads, [5, 200, 6, 210], timeout=10)[0]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(client, range(16)))
    assert outcomes == [[(f"c{c}", (c * 10 + k) * 2) for k in range(4)] for c in range(16)]
    assert not together.broken
    assert batcher.stats.snapshot()["texts"] == 64


def test_direct_runner_runs_at_most_its_runners_at_once():
    running, most, lock = [0], [0], threading.Lock()

    def model(payloads: list) -> list:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return payloads

    runner = DirectRunner(model, max_batch_size=4, max_batch_tokens=1000, runners=2)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: runner.predict([i], [3])[0], range(16)))
    assert results == [[i] for i in range(16)] and most[0] == 2

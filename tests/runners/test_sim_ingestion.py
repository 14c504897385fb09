"""The API server's processor-sharing queue (`runners.sim.frontend.Ingestion`): jobs that share
a completion value leave together in id order, and on random arrivals (many of them tied) it
completes the jobs at the times, in the order, of the plain virtual-time heap of
(completion value, id) pairs it replaces."""

from __future__ import annotations

import heapq
import random

import pytest

from runners.sim.frontend import Ingestion


class TupleHeap:
    """Egalitarian processor sharing over a heap of (completion value, id) pairs."""

    def __init__(self, speedup: float) -> None:
        self.speedup, self.t, self.v = speedup, 0.0, 0.0
        self.heap: list[tuple[float, int]] = []

    def advance(self, t: float, done: list[tuple[float, int]]) -> None:
        while self.heap:
            v_done, rid = self.heap[0]
            t_done = self.t + (v_done - self.v) * len(self.heap)
            if t_done > t:
                break
            heapq.heappop(self.heap)
            self.t, self.v = t_done, v_done
            done.append((t_done, rid))
        if self.heap and t > self.t:
            self.v += (t - self.t) / len(self.heap)
        self.t = max(self.t, t)

    def add(self, t: float, work_s: float, rid: int, done: list[tuple[float, int]]) -> None:
        self.advance(t, done)
        heapq.heappush(self.heap, (self.v + work_s / self.speedup, rid))


def test_tied_jobs_leave_in_id_order() -> None:
    queue = Ingestion(speedup=2.0)
    done: list[tuple[float, int]] = []
    for rid in (7, 3, 5):
        queue.add(1.0, 0.6, rid, done)
    queue.add(1.0, 0.2, 9, done)
    queue.advance(100.0, done)
    assert [rid for _, rid in done] == [9, 3, 5, 7]
    assert done[1][0] == done[2][0] == done[3][0] > done[0][0] > 1.0
    assert not queue.busy


@pytest.mark.parametrize("seed", range(4))
def test_random_arrivals_leave_as_from_a_heap_of_pairs(seed: int) -> None:
    rng = random.Random(seed)
    queue, reference = Ingestion(speedup=4.0), TupleHeap(speedup=4.0)
    got: list[tuple[float, int]] = []
    want: list[tuple[float, int]] = []
    t = 0.0
    for rid in rng.sample(range(3000), 3000):
        t += rng.choice([0.0, 0.0, 0.001, 0.01, 0.05])  # bursts at the same time
        work = rng.choice([0.01, 0.02, 0.05, rng.uniform(0.001, 0.1)])  # tied work too
        queue.add(t, work, rid, got)
        reference.add(t, work, rid, want)
        if rng.random() < 0.1:
            queue.advance(t + 0.02, got)
            reference.advance(t + 0.02, want)
            t += 0.02
        assert queue.next_completion_s() == (
            reference.t + (reference.heap[0][0] - reference.v) * len(reference.heap)
            if reference.heap
            else float("inf")
        )
    queue.advance(t + 1e6, got)
    reference.advance(t + 1e6, want)
    assert got == want
    assert len(got) == 3000 and len({rid for _, rid in got}) == 3000

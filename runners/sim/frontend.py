"""The API server between the benchmark client and the engine core.

The scheduler feeds client sends into `Ingestion` (a processor-shared CPU queue: a burst of N
requests finishes tokenization together after about N*c_in) and learns when each request enters
the engine (ingestion done + fixed pipeline latency). Tokens produced by an engine step go out
through `OutputStream`, which serializes c_out per token on the server; the delivery times it
returns are what the client sees as TTFT, ITL and E2E.
"""

from __future__ import annotations

import heapq

import numpy as np

from runners.bench.records import FloatArray, IntArray
from runners.sim import params


class Ingestion:
    """Egalitarian processor sharing with a virtual-time heap, O(log N) per event.

    Attained service per job V(t) grows at 1/n(t); a job with work s arriving when V = v0
    completes when V reaches v0 + s. Arrivals must be added in time order, and never before the
    time the queue was last advanced to. The heap holds the jobs' completion values alone (an
    overloaded server queues thousands, and floats compare faster than tuples); `_jobs` maps
    each to its jobs' ids, leaving in id order when several share one.
    """

    def __init__(self, speedup: float) -> None:
        self._speedup = speedup
        self._t = 0.0
        self._v = 0.0
        self._heap: list[float] = []
        self._jobs: dict[float, list[int]] = {}  # completion value -> a heap of job ids

    def _advance(self, t: float, done: list[tuple[float, int]]) -> None:
        heap, jobs = self._heap, self._jobs
        clock, v = self._t, self._v
        while heap:
            v_done = heap[0]
            t_done = clock + (v_done - v) * len(heap)
            if t_done > t:
                break
            heapq.heappop(heap)
            clock = t_done
            v = v_done
            ids = jobs[v_done]
            if len(ids) == 1:
                del jobs[v_done]
                done.append((t_done, ids[0]))
            else:
                done.append((t_done, heapq.heappop(ids)))
        if heap and t > clock:
            v += (t - clock) / len(heap)
        self._v = v
        self._t = t if t > clock else clock

    def add(self, t: float, work_s: float, rid: int, done: list[tuple[float, int]]) -> None:
        if self._heap:
            self._advance(t, done)
        elif t > self._t:  # `_advance` of an idle queue only moves its clock
            self._t = t
        v_done = self._v + work_s / self._speedup
        heapq.heappush(self._heap, v_done)
        ids = self._jobs.get(v_done)
        if ids is None:
            self._jobs[v_done] = [rid]
        else:
            heapq.heappush(ids, rid)

    def advance(self, t: float, done: list[tuple[float, int]]) -> None:
        self._advance(t, done)

    def next_completion_s(self) -> float:
        if not self._heap:
            return float("inf")
        return self._t + (self._heap[0] - self._v) * len(self._heap)

    @property
    def busy(self) -> bool:
        return bool(self._heap)


def ingestion_work_s(prompt_len: int, c_in_s: float) -> float:
    """API-server CPU to ingest one request (`c_in_s` is the engine's fitted per-request cost)."""
    return c_in_s + params.FRONTEND_C_IN_PER_TOK_S * prompt_len


class OutputStream:
    """Serialized token delivery: a step's n tokens leave at max(step_end, free) + n*c_out."""

    def __init__(self, speedup: float, c_out_s: float) -> None:
        self.token_s = c_out_s / speedup  # server time to send one token
        self.free_s = 0.0

    def deliver(self, step_end_s: float, n_tokens: int) -> float:
        free = self.free_s  # `max(step_end_s, free)`, as a comparison
        free = (free if free > step_end_s else step_end_s) + n_tokens * self.token_s
        self.free_s = free
        return free

    def deliver_gaps(self, step_end_s: list[float], n_tokens: int, last_s: float) -> list[float]:
        """`deliver` of consecutive steps with the same token count, in one call: the gaps
        between their deliveries, the first from `last_s` (the last is `free_s` after)."""
        cost = n_tokens * self.token_s
        free = self.free_s
        gaps: list[float] = []
        for end in step_end_s:
            free = (end if end > free else free) + cost
            gaps.append(free - last_s)
            last_s = free
        self.free_s = free
        return gaps

    def deliver_steps(self, step_end_s: FloatArray, n_tokens: IntArray) -> FloatArray:
        """Delivery times of consecutive steps with per-step token counts (vectorized):
        d_j = C_j + max(free, max_{i<=j}(e_i - C_{i-1})), C_j = cumulative cost."""
        cost = n_tokens.astype(np.float64) * self.token_s
        cum = np.cumsum(cost)
        lead = np.maximum.accumulate(step_end_s - (cum - cost))
        out = cum + np.maximum(lead, self.free_s)
        self.free_s = float(out[-1])
        return np.asarray(out, dtype=np.float64)

    def deliver_run(self, step_end_s: FloatArray, n_tokens: int) -> FloatArray:
        """Delivery times of k consecutive steps with the same token count (vectorized)."""
        cost = n_tokens * self.token_s
        j = np.arange(len(step_end_s), dtype=np.float64)
        # d_j = max(e_j, d_{j-1}) + cost, unrolled:
        # d_j = (j+1)*cost + max(free, max_{i<=j}(e_i - i*cost))
        lead = np.maximum.accumulate(step_end_s - j * cost)
        out = (j + 1.0) * cost + np.maximum(lead, self.free_s)
        self.free_s = float(out[-1])
        return np.asarray(out, dtype=np.float64)

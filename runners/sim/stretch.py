"""Decode-only stretches of a simulated engine instance, collapsed into macro-steps.

Place in the data flow: the scheduler models (`scheduler`) derive from `StretchEngine`, which
adds to `replica.ReplicaEngine` the steps in which every running request decodes one token:
`_macro_decode` runs k of them at once (to the first finish, the free blocks, or the first step
that reaches the next possible arrival, `_macro_len`), and `_macro_drain` runs through request
finishes when nothing can enter any more (`_draining`) or, noise off, when a finish lets
nothing in before the next arrival (`_passing`), per step the batch of requests still running.
"""

from __future__ import annotations

import math

import numpy as np

from runners.bench.records import FloatArray, IntArray
from runners.sim.replica import ReplicaEngine, ceil_div

MACRO_MAX_STEPS = 4096
MACRO_FIRST_STEPS = 32  # steps `_macro_len` prices before the whole run


class StretchEngine(ReplicaEngine):
    """`ReplicaEngine` with decode-only macro-steps; subclasses implement `_iterate`."""

    _run_memo: tuple[int, float, FloatArray] | None = None
    _drain_memo: tuple[IntArray, int, IntArray, FloatArray] | None = None

    def _macro_decode(self, k: int) -> None:
        """k decode-only steps of the whole running set (blocks for step 1 already held)."""
        ids = self.running
        n = len(ids)
        kv0 = self.kv_len[ids]
        times = self._decode_run_s(n, float(kv0.sum() + n), k)
        if self.noise is not None:
            times = self._jitter(times)
        ends = self.now + np.cumsum(times)
        d = self.stream.deliver_run(ends, n)
        kv1 = kv0 + k
        held = ceil_div(kv1, self.page)
        self._allocate(int(held.sum()) - int(self.blocks[ids].sum()))
        self.blocks[ids] = held
        self.kv_len[ids] = kv1
        gen0 = self.gen[ids]
        if int(gen0.min()) > 0:
            self.itl.append(d[0] - self.last_s[ids])
        else:
            had = gen0 > 0
            self.itl.append(d[0] - self.last_s[ids[had]])
            self.first_s[ids[~had]] = d[0]
            self._first_tokens(ids[~had])
        if k > 1:
            gaps = d[1:] - d[:-1]
            self.itl.append(np.repeat(gaps[np.newaxis, :], n, axis=0).ravel())
        self.last_s[ids] = d[-1]
        gen = gen0 + k
        self.gen[ids] = gen
        self.seq_len[ids] += k
        self.now = float(ends[-1])
        self.steps += k
        self._finish_done(ids[gen >= self.out[ids]], float(d[-1]))

    # --- drain: decode-only stretches through request finishes -----------------------------
    def _draining(self) -> bool:
        """Nothing can enter the engine any more and a finish triggers no new send, so the
        running set only shrinks: decode runs straight through finishes."""
        return (
            self._no_more_arrivals()
            and not bool((self.child[self.running] >= 0).any())
            and not self._has_partial()
        )

    def _passing(self) -> bool:
        """Nothing waits, nothing is half prefilled, and a finish triggers no new send (every
        conversation has been sent, none has a later turn): a decode stretch may run through
        finishes up to the next arrival, as a drain does. Noise off only: the jitter's draws
        follow the stretches, so splitting them differently would change a noisy run."""
        return (
            self.noise is None
            and not self.waiting
            and not self._has_partial()
            and self.next_client >= len(self.roots)
            and not bool((self.child[self.running] >= 0).any())
        )

    def _pass_k(self, t_limit_s: float) -> int:
        """`_drain_k` capped, like `_macro_len`, at the first step that reaches `t_limit_s`."""
        k = self._drain_k()
        if k <= 1 or not math.isfinite(t_limit_s):
            return k
        rem = self.out[self.running] - self.gen[self.running]
        first = min(k, MACRO_FIRST_STEPS)
        _, _, n_j, times = self._drain_times(rem, first)
        ends = self.now + np.cumsum(times)
        if ends[-1] < t_limit_s and first < k:
            _, _, n_j, times = self._drain_times(rem, k)
            ends = self.now + np.cumsum(times)
        self._drain_memo = (self.running, self.steps, n_j, times)
        return min(k, int(np.searchsorted(ends, t_limit_s)) + 1)

    def _drain_k(self) -> int:
        """Steps until the last running request finishes, capped by free KV blocks."""
        ids = self.running
        rem = self.out[ids] - self.gen[ids]
        k_hi = min(int(rem.max()), MACRO_MAX_STEPS)
        kv0 = self.kv_len[ids]
        held = int(self.blocks[ids].sum())

        def fits(k: int) -> bool:
            need = int(ceil_div(kv0 + np.minimum(rem, k), self.page).sum()) - held
            return need <= self.free

        if fits(k_hi):
            return k_hi
        lo, hi = 1, k_hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _drain_times(
        self, rem: IntArray, k: int
    ) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
        """(decode steps each running request takes part in, the requests in finishing order,
        batch size per step, step times) of k decode-only steps through finishes."""
        steps = np.minimum(rem, k)
        order = np.sort(steps)
        j = np.arange(k, dtype=np.int64)
        first_active = np.searchsorted(order, j, side="right")
        n_j = len(rem) - first_active  # active at step j
        kv0 = self.kv_len[self.running].astype(np.float64) + 1.0
        # sum over requests active at step j of (kv0 + j): prefix sums over sorted finish steps
        by_steps = np.argsort(steps, kind="stable")
        kv_sorted = kv0[by_steps]
        tail = np.concatenate([np.cumsum(kv_sorted[::-1])[::-1], [0.0]])
        ctx_j = tail[first_active] + j * n_j
        return steps, by_steps, n_j, self.model.decode_steps_s(n_j, ctx_j)

    def _macro_drain(self, k: int) -> None:
        """k decode-only steps in which running requests finish one after another; per step
        the batch is the requests still running, vectorized over steps."""
        ids = self.running
        rem = self.out[ids] - self.gen[ids]
        memo = self._drain_memo
        if memo is not None and memo[0] is ids and memo[1] == self.steps and len(memo[2]) >= k:
            # `_pass_k` priced this stretch: per-step batches and times do not depend on k
            steps = np.minimum(rem, k)
            by_steps = np.argsort(steps, kind="stable")
            n_j, times = memo[2][:k], memo[3][:k]
        else:
            steps, by_steps, n_j, times = self._drain_times(rem, k)
        self._drain_memo = None
        if self.noise is not None:
            times = self._jitter(times)
        ends = self.now + np.cumsum(times)
        d = self.stream.deliver_steps(ends, n_j)
        gen0 = self.gen[ids]
        had = gen0 > 0
        self.itl.append(d[0] - self.last_s[ids[had]])
        if not had.all():
            fresh = ids[~had]
            self.first_s[fresh] = d[0]
            self._first_tokens(fresh)
        if k > 1:
            self.itl.append(np.repeat(d[1:] - d[:-1], n_j[1:]))
        last = d[steps - 1]
        self.last_s[ids] = last
        self.gen[ids] = gen0 + steps
        self.seq_len[ids] += steps
        kv1 = self.kv_len[ids] + steps
        held = ceil_div(kv1, self.page)
        self._allocate(int(held.sum()) - int(self.blocks[ids].sum()))
        self.blocks[ids] = held
        self.kv_len[ids] = kv1
        self.now = float(ends[-1])
        self.steps += k
        # release in the order the requests finish, as step by step (the free queue's order)
        finishing = by_steps[(steps == rem)[by_steps]]
        for rid, t in zip(ids[finishing].tolist(), last[finishing].tolist(), strict=True):
            self._release(rid, cache=False)
            self.done_s[rid] = t
            self.success[rid] = True
        self.running = ids[steps < rem]

    def _decode_blocks_k(self, ids: IntArray, k_hi: int) -> int:
        """Largest k <= k_hi whose decode steps 2..k fit in the free blocks (binary search)."""
        if len(ids) * (k_hi // self.page + 1) <= self.free:
            return k_hi
        kv0 = self.kv_len[ids]
        held = int(self.blocks[ids].sum())
        lo, hi = 1, k_hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if int(ceil_div(kv0 + mid, self.page).sum()) - held <= self.free:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _decode_run_s(self, n: int, ctx_sum: float, k: int) -> FloatArray:
        """`StepModel.decode_run_s`, remembered: step j's time depends on j alone, so the run
        `_macro_len` priced is the start of the run `_macro_decode` then takes."""
        memo = self._run_memo
        if memo is not None and memo[0] == n and memo[1] == ctx_sum and len(memo[2]) >= k:
            return memo[2][:k]
        times = self.model.decode_run_s(n, ctx_sum, k)
        self._run_memo = (n, ctx_sum, times)
        return times

    def _macro_len(self, k_limit: int, t_limit_s: float) -> int:
        """Cap k so the stretch ends at the first step that reaches `t_limit_s`."""
        if not math.isfinite(t_limit_s) or k_limit <= 1:
            return k_limit
        ids = self.running
        n = len(ids)
        ctx_sum = float(self.kv_len[ids].sum() + n)
        # price a short run first: step j's time does not depend on the run's length, and the
        # limit is usually a few steps away
        first = min(k_limit, MACRO_FIRST_STEPS)
        ends = self.now + np.cumsum(self._decode_run_s(n, ctx_sum, first))
        if ends[-1] < t_limit_s and first < k_limit:
            ends = self.now + np.cumsum(self._decode_run_s(n, ctx_sum, k_limit))
        return min(k_limit, int(np.searchsorted(ends, t_limit_s)) + 1)

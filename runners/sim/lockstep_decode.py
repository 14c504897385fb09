"""The decode-only steps of the vLLM lockstep loop and the finishes they bring.

Place in the data flow: `lockstep.Lockstep` (the loop) derives from `DecodingSteps`, which
derives from `lockstep_state.LazyDecoding` (the lazy state of the decoding requests). When
only decoding requests run, the loop advances them by segments: decode steps up to the first
finish, the free pages or a time limit, priced step by step in scalar Python
(`StepModel.decode_ends`) and with NumPy only for long ones (`decode_run_s`), their tokens
delivered as pooled ITL gaps. Each finish is released here (`_finish`), in running order, as
`VllmEngine._finish_done` does.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np

from runners.sim.lockstep_state import LazyDecoding
from runners.sim.replica import ReplicaEngine
from runners.sim.stretch import MACRO_MAX_STEPS

Returned = Callable[[int], None]  # a finished request's reservation goes back (TensorRT-LLM)

SCALAR_STEPS = 64  # decode steps priced in scalar Python before a stretch switches to NumPy


class DecodingSteps(LazyDecoding):
    """Decode-only segments of one `VllmEngine`'s running set, and its finishes."""

    def __init__(self, engine: ReplicaEngine, returned: Returned | None) -> None:
        super().__init__(engine)
        self.returned = returned  # None when finishes give nothing back but their pages

    def _finish(self, ended: list[tuple[int, int]], d: float) -> bool:
        """Release the requests that produced their last token at `d` (the lockstep's due
        now and `ended`), in running order, as `_finish_done` does; whether there were any."""
        eng = self.eng
        steps, finishes = eng.steps, self.finishes
        if self.dec and finishes[0][0] == steps:
            # the decoding requests that finish now leave the lazy state (`_leave`)
            page, d_last, dec, kv_off_of = self.page, self.d_last, self.dec, self.kv_off
            kv_len, seq_len, gen, blocks, last_s = (
                eng.kv_len, eng.seq_len, eng.gen, eng.blocks, eng.last_s,
            )  # fmt: skip
            kv_sum = self.kv_sum
            while dec and finishes[0][0] == steps:
                _, order, rid = heapq.heappop(finishes)
                kv_off = kv_off_of[rid]
                kv = kv_off + steps
                kv_len[rid] = kv
                seq_len[rid] = kv + 1
                gen[rid] = self.gen_off[rid] + steps
                blocks[rid] = -(-kv // page)
                last_s[rid] = d_last
                del dec[rid]
                kv_sum -= kv
                self.residue[kv_off % page] -= 1
                ended.append((order, rid))
            self.kv_sum = kv_sum
        if not ended:
            return False
        if len(ended) > 1:
            ended.sort()
        returned = self.returned
        if returned is not None:
            for _, rid in ended:
                returned(rid)
        child, done_s, success = self.child, eng.done_s, eng.success
        for _, rid in ended:
            later = child[rid] >= 0
            eng._release(rid, later)
            done_s[rid] = d
            success[rid] = True
            if later or eng.next_client < len(eng.roots):  # else `_next_turn` sends nothing
                eng._next_turn(rid, d)
        return True

    def _blocks_k(self, k_hi: int) -> int:
        """`_decode_blocks_k`: the largest k <= k_hi whose steps 2..k fit in the free blocks."""
        eng = self.eng
        n = len(self.dec)
        page = self.page
        free = eng.free
        if n * (k_hi // page + 1) <= free:
            return k_hi
        residue = self.residue
        s1 = eng.steps + 1  # step count before step 2
        cycles = min((k_hi - 1) // page, free // n)
        k = 1 + cycles * page
        free -= cycles * n
        while k < k_hi:
            need = residue[-(s1 + k - 1) % page]
            if need > free:
                break
            free -= need
            k += 1
        return k

    def _segment(self, t_limit: float) -> bool:
        """Decode steps up to the first finish, the blocks, or `t_limit`; whether it ended
        at a finish (step 1's blocks are held)."""
        eng = self.eng
        n = len(self.dec)
        steps = eng.steps
        k = self.finishes[0][0] - steps
        if k > MACRO_MAX_STEPS:
            k = MACRO_MAX_STEPS
        if n * (k // self.page + 1) > eng.free:  # else all k steps' blocks fit
            k = self._blocks_k(k)
        if k <= 1:
            return self._decode_one()
        model = eng.model
        ctx0 = float(self.kv_sum + n)
        ends = model.decode_ends(
            n, ctx0, k if k < SCALAR_STEPS else SCALAR_STEPS, eng.now, t_limit
        )
        if len(ends) == 1:
            return self._decode_one()
        stream = eng.stream
        self.gaps += stream.deliver_gaps(ends, n, self.d_last)
        m = len(ends)
        self.counts += [n] * m
        d_prev = stream.free_s
        if m == SCALAR_STEPS and m < k and ends[-1] < t_limit:
            # a long stretch: the rest as `_macro_decode` prices it
            times = model.decode_run_s(n, ctx0 + n * float(m), k - m)
            more = ends[-1] + np.cumsum(times)
            if math.isfinite(t_limit):
                more = more[: int(np.searchsorted(more, t_limit)) + 1]
            d_more = stream.deliver_run(more, n)
            self.gaps.append(float(d_more[0]) - d_prev)
            self.counts.append(n)
            if len(d_more) > 1:
                self.runs.append((d_more[1:] - d_more[:-1], n))
            m += len(more)
            d_prev = float(d_more[-1])
            eng.now = float(more[-1])
        else:
            eng.now = ends[-1]
        # the steps' blocks (steps 2..m; step 1's are held) and the lazy state's advance
        page = self.page
        residue = self.residue
        need = ((m - 1) // page) * n
        r = (m - 1) % page
        if r:  # the residues -(steps + 1 + i) % page, i < r: r consecutive ones, descending
            hi = -(steps + 1) % page + 1
            lo = hi - r
            need += sum(residue[lo:hi]) if lo >= 0 else sum(residue[:hi]) + sum(residue[lo:])
        eng.free -= need  # `_allocate`
        front = eng.q_front + need
        eng.q_front = front if front < eng.q_tail else eng.q_tail
        eng.steps = steps + m
        self.kv_sum += n * m
        self.d_last = d_prev
        return self._finish([], d_prev)

    def _decode_one(self) -> bool:
        """One decode step of the running set (all decoding): `_mixed` with no one else;
        whether a request finished."""
        eng = self.eng
        n = len(self.dec)
        eng.now += eng.model.step_s(n, n, n, float(self.kv_sum + n), 0.0, 0.0)
        eng.steps += 1
        self.kv_sum += n
        d = eng.stream.deliver(eng.now, n)
        self.gaps.append(d - self.d_last)
        self.counts.append(n)
        self.d_last = d
        return self._finish([], d)

"""SGLang's (and MindIE's) scheduler loop with its running requests advanced in aggregate.

Place in the data flow: `scheduler.SglangEngine.run` (MindIE's model derives from it) hands its
loop to `SglangLockstep.run` when the run has no noise, as `VllmEngine.run` hands its own to
`lockstep.Lockstep`. In SGLang's model every running request decodes (a prompt joins the running
set once its prefill batch sampled its first token), and a step is either a prefill batch alone or
a decode step of the whole set, so the running requests are kept lazily
(`sglang_running.SglangRunning`) against a count of decode steps. A decode stretch then needs their
aggregates only, and its KV pages follow `_iterate`'s rule: a running request holds its KV length's
pages, so a decode step takes a page for each request whose KV fills its pages (every request in
SGLang's 1-token pages, every 128th step in MindIE's blocks). Prefill batches are executed and the
waiting head's reservation check evaluated in scalar Python with `_iterate`'s float operations;
admission (`SglangEngine._prefill_batch`) and retraction use the engine's own methods. A drain
(nothing can enter any more) runs `_iterate` on the materialized arrays, after which the lazy state
is rebuilt. The result is the step-by-step loop's up to last-bit floating-point differences;
`tests/runners/test_sim_lockstep_sglang.py` compares the two.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from runners.sim.replica import ReplicaResult
from runners.sim.sglang_running import SglangRunning
from runners.sim.stretch import MACRO_MAX_STEPS

SCALAR_STEPS = 64  # decode steps priced in scalar Python before a stretch switches to NumPy


class SglangLockstep(SglangRunning):
    """The loop that advances an `SglangRunning` state as `SglangEngine._iterate` would."""

    def _draining(self) -> bool:
        """`StretchEngine._draining`: nothing can enter the engine any more."""
        return self.eng._no_more_arrivals() and not self.n_child and self.pol.partial < 0

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> ReplicaResult:
        """`ReplicaEngine.run` with `step` in place of `_iterate`."""
        eng = self.eng
        pol = self.pol
        sends, entries, ingest = eng.sends, eng.entries, eng.ingest
        self.rebuild()
        while True:
            now = eng.now
            if (sends and sends[0][0] <= now) or (entries and entries[0][0] <= now) or ingest.busy:
                eng._absorb_arrivals()
            if not self.dec and not eng.waiting and pol.partial < 0:
                if not eng._wait_for_event(stuck=False):
                    break
                continue
            progressed = self.step()
            if progressed is None:
                self.materialize()
                progressed = eng._iterate()
                self.rebuild()
            eng.max_running = max(eng.max_running, len(self.dec))
            if not progressed and not eng._wait_for_event(stuck=True):
                break
        self.materialize()
        self.flush_itl()
        return ReplicaResult(eng._records(), eng.steps, eng.preemptions, eng.max_running)

    def step(self) -> bool | None:
        """One `SglangEngine._iterate`; None when it needs the arrays (a drain)."""
        eng = self.eng
        pol = self.pol
        if self.dec and self._draining():
            return None
        if not self._refused() and self._prefill():
            return True
        n = len(self.dec)
        if not n:
            return False
        # retraction: the newest requests go back to the queue until one decode step's new
        # pages fit
        if eng.free < self._pages_after(1) - self._blocks_sum():
            keep = n
            while eng.free < self._pages_after(1) - self._blocks_sum() and keep > 1:
                keep -= 1
                rid = next(reversed(self.dec))
                self._leave(rid)
                self.stale += 1
                eng._preempt(rid)
            pol.ratio = pol.init_ratio
            n = keep
        self._decode(n)
        return True

    def _refused(self) -> bool:
        """Whether the prefill batch is known to be empty without building it: no prompt is
        being chunked and the waiting head is refused, or a chained head's reservation check
        against its most possible hit refuses it (`admit_chained_head`'s first check, the same
        float operations), so nothing else is evaluated. False: build the batch."""
        pol = self.pol
        if pol.partial >= 0:
            return False
        eng = self.eng
        waiting = eng.waiting
        if not waiting:
            return True
        n = len(self.dec)
        if n >= pol.max_running_req:
            return pol.budget > 0  # `_admit`'s first check (a batch needs a budget first)
        cache = eng.cache
        rid = waiting[0]
        if cache is None or not cache.has_chain(rid) or pol.budget <= 0:
            return False
        ratio = pol.ratio
        rem = eng.free * self.page - (float(self._left()) * ratio if n else 0.0)
        left = int(eng.out[rid] - eng.gen[rid])
        if left > self.clip:
            left = self.clip
        page = self.page
        seq = int(eng.seq_len[rid])
        last = (seq - 1) // page
        most = cache.hit_ceiling(rid) // page
        return seq - (most if most < last else last) * page + left * ratio > rem

    def _prefill(self) -> bool:
        """`SglangEngine._prefill`: a prefill batch runs alone (`_execute` and `_emit` of its
        requests in scalar Python); whether there was one."""
        eng = self.eng
        pol = self.pol
        ids, toks = pol._prefill_batch(len(self.dec), self._reserved)
        if not ids:
            return False
        kv_len, seq_len = eng.kv_len, eng.seq_len
        ctx = pre_tok = pre_kv = 0
        flop_units = 0.0
        sampled: list[int] = []
        for rid, tok in zip(ids, toks, strict=True):
            kv0 = int(kv_len[rid])
            kv1 = kv0 + tok
            kv_len[rid] = kv1
            done = kv1 == int(seq_len[rid])
            if done:
                sampled.append(rid)
            if done and tok == 1:  # one token that completes the sequence: a decode
                ctx += kv1
            else:
                c, p = float(tok), float(kv0)
                flop_units += c * (p + (c + 1.0) * 0.5)
                pre_tok += tok
                pre_kv += kv0
        kv_toks = float(pre_tok) + float(pre_kv)
        n_sampled = len(sampled)
        eng.now += eng.model.step_s(
            sum(toks), len(ids), n_sampled, float(ctx), flop_units, kv_toks
        )
        eng.steps += 1
        if not n_sampled:
            return True
        d = eng.stream.deliver(eng.now, n_sampled)
        gen, last_s, out = eng.gen, eng.last_s, self.out
        firsts: list[int] = []
        finished: list[int] = []
        for rid in sampled:
            g = int(gen[rid])
            if g > 0:
                self.gaps.append(d - float(last_s[rid]))
                self.counts.append(1)
            else:
                eng.first_s[rid] = d
                firsts.append(rid)
            last_s[rid] = d
            gen[rid] = g + 1
            seq_len[rid] += 1
            if g + 1 >= out[rid]:
                finished.append(rid)
        if firsts and eng.cache is not None:  # `_first_tokens`, without the array
            eng.cache.computed_ids(firsts)
        for rid in finished:
            eng._release(rid, cache=self.child[rid] >= 0)
            eng.done_s[rid] = d
            eng.success[rid] = True
            eng._next_turn(rid, d)
        success = eng.success
        for rid in sampled:
            if not success[rid]:
                self._join(rid)
        return True

    # --- decode steps ------------------------------------------------------------------------
    def _decode(self, n: int) -> None:
        """`_iterate`'s decode part: `_decode_k` steps, as one step or a macro-step."""
        eng = self.eng
        pol = self.pol
        k = self._free_k(n, min(self._next_finish() - self.ds, MACRO_MAX_STEPS))
        ends: tuple[list[float], np.ndarray | None] | None = None
        if k <= 1:
            k = 1
        elif not eng.waiting:
            t_limit = eng._next_entry_bound_s()
            if math.isfinite(t_limit):
                ends = self._ends(n, k, t_limit)
                k = len(ends[0]) + (0 if ends[1] is None else len(ends[1]))
        elif n < pol.max_running_req:
            k = self._head_k(n, k)
        if k > 1:
            self._macro(n, k, ends)
        else:
            self._single(n)
        pol.ratio = max(pol.min_ratio, pol.ratio - pol.decay * k)

    def _free_k(self, n: int, k_hi: int) -> int:
        """`pages.decode_pages_k`: the most decode steps up to `k_hi` whose new pages fit the
        free ones (at least 1)."""
        free = self.eng.free + self._blocks_sum()
        if self.page == 1:
            return max(1, min(k_hi, (free - self.kv_sum) // n))
        if self.pages + n * (k_hi // self.page + 1) <= free:  # each crosses at most that
            return k_hi
        cum = self._crossings()
        lo, hi = 1, k_hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._pages_after(mid, cum) <= free:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _head_k(self, n: int, k: int) -> int:
        """`SglangEngine._head_admissible_after`: the first of steps 1..k after which the
        waiting head passes the reservation check, else k (the same float operations, in
        scalar Python for the first `SCALAR_STEPS`, NumPy after)."""
        eng = self.eng
        pol = self.pol
        rid = eng.waiting[0]
        left = float(self._left())
        seq_len = int(eng.seq_len[rid])
        seq = float(seq_len)
        seq_pages = -(-seq_len // self.page)
        head_left = min(float(eng.out[rid] - eng.gen[rid]), self.clip)
        ratio, decay, min_ratio = pol.ratio, pol.decay, pol.min_ratio
        page = self.page
        free = eng.free + self._blocks_sum()  # free after j steps: free - _pages_after(j)
        cum = self._crossings()
        base = free - self.pages  # inlined `_pages_after(j, cum)`: free_j = base - crossed
        # step 1 in full, then whether any later step can pass at all (usually none can)
        free_1 = base - (1 // page) * n - cum[1 % page]
        if free_1 < seq_pages:  # the free pages only shrink over the stretch
            return k
        r = max(min_ratio, ratio - decay * 1)
        if free_1 * page - (left - n * 1) * r >= seq + head_left * r:
            return 1
        if left >= n * k and self._never(n, k, free_1, left, seq, head_left):
            return k
        first = min(k, SCALAR_STEPS)
        for j in range(1, first + 1):
            r = max(min_ratio, ratio - decay * j)
            free_j = base - (j // page) * n - cum[j % page]
            if free_j * page - (left - n * j) * r >= seq + head_left * r and free_j >= seq_pages:
                return j
        if first == k:
            return k
        ks = np.arange(first + 1, k + 1, dtype=np.int64)
        ratios = np.maximum(min_ratio, ratio - decay * ks)
        frees = free - self._pages_after_run(ks, cum)
        reserved = (left - n * ks) * ratios
        ok = (frees * page - reserved >= seq + head_left * ratios) & (frees >= seq_pages)
        if ok.any():
            return int(ks[int(np.argmax(ok))])
        return k

    def _never(self, n: int, k: int, free_1: int, left: float, seq: float, head: float) -> bool:
        """Whether no step j of 1..k can pass the head's reservation check, proved by an upper
        bound of its margin M(j) = free_j * page - (left - n * j) * r_j - (seq + head * r_j)
        (`head`: its clipped remaining output) that misses by more than the float rounding of
        the terms (within it, the caller scans the steps). `left >= n * k`, so M(j) falls as
        the ratio r_j rises, and r_j >= max(min_ratio, ratio - decay * j); hence
        M(j) <= M(j) at `min_ratio`, whose largest value is at j = 1 in 1-token pages (it falls
        by n * (1 - min_ratio) a step) and at most the bound `wide` below in larger pages (free
        pages only shrink); and in 1-token pages (free_j = free_1 + n - n * j) M(j) <= Q(j) at
        ratio - decay * j, a concave quadratic whose largest value on [1, k] is at its vertex
        or an end."""
        pol = self.pol
        page = self.page
        m, ratio, decay = pol.min_ratio, pol.ratio, pol.decay
        scale = abs(free_1) * page + left + n * k + seq + head + 1.0
        if page != 1:
            wide = free_1 * page - (left - n * k) * m - seq - head * m
            return wide < -1e-9 * scale
        bound = free_1 - (left - n) * m - seq - head * m
        c2 = n * decay
        c1 = n * ratio - n + (left + head) * decay
        c0 = free_1 + n - seq - (left + head) * ratio
        top = c1 / (2.0 * c2) if c2 > 0.0 else (float(k) if c1 > 0.0 else 1.0)
        top = min(max(top, 1.0), float(k))
        bound = min(bound, c0 + c1 * top - c2 * top * top)
        return bound < -1e-9 * scale

    def _ends(self, n: int, k: int, t_limit: float) -> tuple[list[float], np.ndarray | None]:
        """End times of up to k decode steps of the n running requests, through the first
        that reaches `t_limit`: `StepModel.decode_ends` for the first `SCALAR_STEPS`, NumPy
        after (the same sums as `np.cumsum` over the whole run)."""
        model = self.eng.model
        now = self.eng.now
        ctx0 = float(self.kv_sum + n)
        first = min(k, SCALAR_STEPS)
        ends = model.decode_ends(n, ctx0, first, now, t_limit)
        m = len(ends)
        if m == k or ends[-1] >= t_limit:
            return ends, None
        # the NumPy rest continues the scalar steps' running sum, which `ends` holds plus `now`
        cum = model.decode_ends(n, ctx0, m, 0.0, math.inf)[-1]
        times = model.decode_run_s(n, ctx0 + n * float(m), k - m)
        more = now + np.cumsum(np.concatenate(([cum], times)))[1:]
        if math.isfinite(t_limit):
            more = more[: int(np.searchsorted(more, t_limit)) + 1]
        return ends, more

    def _single(self, n: int) -> None:
        """A single decode step: `_execute` of the running set, the pages its tokens need."""
        eng = self.eng
        eng._allocate(self._pages_after(1) - self._blocks_sum())
        eng.now += eng.model.step_s(n, n, n, float(self.kv_sum + n), 0.0, 0.0)
        eng.steps += 1
        d = eng.stream.deliver(eng.now, n)
        self._first_gaps(d, n)
        self.pages += self.residue[-self.ds % self.page]
        self.ds += 1
        self.kv_sum += n
        self.d_last = d
        self._finish(d)

    def _macro(self, n: int, k: int, ends: tuple[list[float], np.ndarray | None] | None) -> None:
        """`StretchEngine._macro_decode`: k decode steps; every request holds its KV length's
        pages."""
        eng = self.eng
        if ends is None:
            ends = self._ends(n, k, math.inf)
        scalar, more = ends
        stream = eng.stream
        d = stream.deliver(scalar[0], n)
        self._first_gaps(d, n)
        if len(scalar) > 1:
            self.gaps += stream.deliver_gaps(scalar[1:], n, d)
            self.counts += [n] * (len(scalar) - 1)
            d = stream.free_s
        if more is not None:
            d_more = stream.deliver_run(more, n)
            self.gaps.append(float(d_more[0]) - d)
            self.counts.append(n)
            if len(d_more) > 1:
                self.runs.append((d_more[1:] - d_more[:-1], n))
            d = float(d_more[-1])
            eng.now = float(more[-1])
        else:
            eng.now = scalar[-1]
        # the pages of kv + k: a request crosses into a new page at each step from a
        # multiple of the page
        pages = self._pages_after(k)
        eng._allocate(pages - self._blocks_sum())
        self.pages = pages
        self.ds += k
        eng.steps += k
        self.kv_sum += n * k
        self.d_last = d
        self._finish(d)

    def _finish(self, d: float) -> None:
        """`_finish_done`: release the requests that produced their last token at `d`, in
        running order."""
        eng = self.eng
        ended: list[tuple[int, int]] = []
        while self.dec and self._next_finish() == self.ds:
            _, order, rid = heapq.heappop(self.finishes)
            self._leave(rid)
            ended.append((order, rid))
        ended.sort()
        for _, rid in ended:
            eng._release(rid, cache=self.child[rid] >= 0)
            eng.done_s[rid] = d
            eng.success[rid] = True
            eng._next_turn(rid, d)

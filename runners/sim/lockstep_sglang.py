"""SGLang's (and MindIE's) scheduler loop with its running requests advanced in aggregate.

Place in the data flow: `scheduler.SglangEngine.run` (MindIE's model derives from it) hands its
loop to `SglangLockstep.run` when the run has no noise, as `VllmEngine.run` hands its own to
`lockstep.Lockstep`. In SGLang's model every running request decodes (a prompt joins the
running set once its prefill batch sampled its first token), and a step is either a prefill
batch alone or a decode step of the whole set, so the running requests are kept lazily
(`sglang_running.SglangRunning`) against a count of decode steps. A decode stretch then needs
their aggregates only, and its KV blocks follow `_iterate`'s two rules exactly: a single decode
step takes one block per request, a macro-step sets each request's blocks to its KV length's
pages (MindIE's pages are 128 tokens). Prefill batches are executed and the waiting head's
reservation check evaluated in scalar Python with `_iterate`'s float operations; admission
(`SglangEngine._prefill_batch`) and retraction use the engine's own methods. A drain (nothing
can enter any more) runs `_iterate` on the materialized arrays, after which the lazy state is
rebuilt. The result is the step-by-step loop's up to last-bit floating-point differences;
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
        eng = self.eng
        pol = self.pol
        return (
            not eng.waiting
            and not eng.sends
            and not eng.entries
            and not eng.ingest.busy
            and eng.next_client >= len(eng.roots)
            and not self.n_child
            and pol.partial < 0
        )

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
                t = eng._next_event_s()
                if not math.isfinite(t):
                    break
                eng.now = max(eng.now, t)
                continue
            progressed = self.step()
            if progressed is None:
                self.materialize()
                progressed = eng._iterate()
                self.rebuild()
            eng.max_running = max(eng.max_running, len(self.dec))
            if not progressed:
                t = eng._next_event_s()
                if not math.isfinite(t):
                    for rid in list(eng.waiting):
                        eng._fail(rid, eng.now)
                    eng.waiting.clear()
                    break
                eng.now = max(eng.now, t)
        self.materialize()
        self.flush_itl()
        return ReplicaResult(eng._records(), eng.steps, eng.preemptions, eng.max_running)

    def step(self) -> bool | None:
        """One `SglangEngine._iterate`; None when it needs the arrays (a drain)."""
        eng = self.eng
        pol = self.pol
        if self.dec and self._draining():
            return None
        if self._prefill():
            return True
        n = len(self.dec)
        if not n:
            return False
        if eng.free < n:  # retraction: the newest requests go back to the queue
            keep = n
            while eng.free < keep and keep > 1:
                keep -= 1
                rid = next(reversed(self.dec))
                self._leave(rid)
                self.stale += 1
                eng._preempt(rid)
            pol.ratio = pol.init_ratio
            n = keep
        self._decode(n)
        return True

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
        if firsts and eng.cache is not None:
            eng._first_tokens(np.array(firsts, dtype=np.int64))
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
        k = min(self._next_finish() - self.ds, MACRO_MAX_STEPS, eng.free // n)
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

    def _head_k(self, n: int, k: int) -> int:
        """`SglangEngine._head_admissible_after`: the first of steps 1..k after which the
        waiting head passes the reservation check, else k (the same float operations, in
        scalar Python for the first `SCALAR_STEPS`, NumPy after)."""
        eng = self.eng
        pol = self.pol
        rid = eng.waiting[0]
        left = float(self._left())
        seq = float(eng.seq_len[rid])
        head_left = min(float(eng.out[rid] - eng.gen[rid]), self.clip)
        free, ratio, decay, min_ratio = eng.free, pol.ratio, pol.decay, pol.min_ratio
        first = min(k, SCALAR_STEPS)
        for j in range(1, first + 1):
            r = max(min_ratio, ratio - decay * j)
            free_j = free - n * j
            if free_j - (left - n * j) * r >= seq + head_left * r and free_j >= seq:
                return j
        if first == k:
            return k
        ks = np.arange(first + 1, k + 1, dtype=np.int64)
        ratios = np.maximum(min_ratio, ratio - decay * ks)
        frees = free - n * ks
        reserved = (left - n * ks) * ratios
        ok = (frees - reserved >= seq + head_left * ratios) & (frees >= seq)
        if ok.any():
            return int(ks[int(np.argmax(ok))])
        return k

    def _ends(self, n: int, k: int, t_limit: float) -> tuple[list[float], np.ndarray | None]:
        """End times of up to k decode steps of the n running requests, through the first
        that reaches `t_limit`: scalar for the first `SCALAR_STEPS`, NumPy after (the same
        sums as `np.cumsum` over the whole run)."""
        eng = self.eng
        model = eng.model
        now = eng.now
        ctx0 = float(self.kv_sum + n)
        cum = 0.0
        ends: list[float] = []
        for j in range(min(k, SCALAR_STEPS)):
            cum += model.decode_step_s(n, ctx0 + n * float(j))
            ends.append(now + cum)
            if ends[-1] >= t_limit:
                return ends, None
        m = len(ends)
        if m == k:
            return ends, None
        times = model.decode_run_s(n, ctx0 + n * float(m), k - m)
        more = now + np.cumsum(np.concatenate(([cum], times)))[1:]
        if math.isfinite(t_limit):
            more = more[: int(np.searchsorted(more, t_limit)) + 1]
        return ends, more

    def _single(self, n: int) -> None:
        """A single decode step: `_execute` of the running set, one block each."""
        eng = self.eng
        eng._allocate(n)
        self.singles += 1
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
        """`StretchEngine._macro_decode`: k decode steps; every request's blocks become its
        KV length's pages."""
        eng = self.eng
        if ends is None:
            ends = self._ends(n, k, math.inf)
        scalar, more = ends
        stream = eng.stream
        d = stream.deliver(scalar[0], n)
        self._first_gaps(d, n)
        for e in scalar[1:]:
            d_next = stream.deliver(e, n)
            self.gaps.append(d_next - d)
            self.counts.append(n)
            d = d_next
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
        page = self.page
        residue = self.residue
        pages = self.pages + (k // page) * n
        for i in range(k % page):
            pages += residue[-(self.ds + i) % page]
        eng._allocate(pages - self._blocks_sum())
        self.pages = pages
        self.ds += k
        self.reset_ds = self.ds
        self.reset_singles = self.singles
        self.reset_mark = self.next_order
        self.old_pages = pages
        self.n_old = n
        self.new_base = self.n_new = 0
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

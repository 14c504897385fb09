"""SGLang's (and MindIE's) scheduler loop with its decoding requests advanced in aggregate.

Place in the data flow: `scheduler.SglangEngine.run` (MindIE's model derives from it) hands its
loop to `SglangLockstep.run` when the run has no noise, as `VllmEngine.run` hands its own to
`lockstep.Lockstep`. In SGLang's model every running request decodes (a prompt joins the
running set once its prefill batch sampled its first token), and a step is either a prefill
batch alone or a decode step of the whole set, so the running requests are kept lazily against
a count of decode steps `ds` (prefill steps do not advance them): KV length and tokens
generated are an offset plus `ds`, and a request's last token went out with the last decode
step unless it joined after it (those are counted per delivery time in `pending`). A decode
stretch then needs aggregates only: the count, the context sum, the first finish (a heap), the
clipped remaining-output sum of the new-token reservation (a heap of the steps where a request
drops under the clip), and the KV blocks, which follow `_iterate`'s two rules exactly: a single
decode step takes one block per request, a macro-step sets each request's blocks to its KV
length's pages (a per-residue count gives their sum; MindIE's pages are 128 tokens). Prefill
batches, admission and retraction run through `SglangEngine`'s own methods on the few requests
involved. Draining (nothing can enter any more) runs `_iterate` on the materialized arrays,
after which the lazy state is rebuilt. The result is the step-by-step loop's up to last-bit
floating-point differences; `tests/runners/test_sim_lockstep_sglang.py` compares the two.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from runners.sim.replica import ReplicaEngine, ReplicaResult
from runners.sim.stretch import MACRO_MAX_STEPS

SCALAR_STEPS = 64  # decode steps priced in scalar Python before a stretch switches to NumPy


class SglangPolicy(Protocol):
    """What the loop needs of `scheduler.SglangEngine` beyond `ReplicaEngine`."""

    partial: int  # the request whose prefill is being chunked, or -1
    ratio: float  # the new-token ratio of the reservation, and its bounds and decay per step
    init_ratio: float
    min_ratio: float
    decay: float
    max_running_req: int

    def _prefill_batch(
        self, n_running: int, reserved: Callable[[], float]
    ) -> tuple[list[int], list[int]]: ...


class SglangLockstep:
    """Lazy state of one `SglangEngine`'s running requests and the loop that advances it."""

    def __init__(self, engine: ReplicaEngine, policy: SglangPolicy, clip: int) -> None:
        self.eng = engine
        self.pol = policy  # the same engine, seen through its SGLang rules
        self.clip = clip  # SGLang's cap on a request's remaining output in the reservation
        n = engine.n
        page = self.page = engine.page
        self.out: list[int] = engine.out.tolist()
        self.child: list[int] = engine.child.tolist()
        self.ds = 0  # decode steps so far
        self.kv_off = [0] * n  # kv_len = kv_off + ds, gen = gen_off + ds
        self.gen_off = [0] * n
        self.order = [0] * n  # position in the running order (join sequence)
        self.next_order = 0
        self.dec: dict[int, None] = {}  # running requests in running order
        self.kv_sum = 0
        self.residue = [0] * page  # running requests per kv_off % page
        self.pages = 0  # sum of ceil(kv_len / page) over the running requests
        self.finishes: list[tuple[int, int, int]] = []  # (ds at finish, order, rid)
        self.stale = 0  # heap entries of retracted requests
        self.joined_ds = [-1] * n  # ds when the request joined: its last token is its own
        self.pending: dict[float, int] = {}  # last token time -> requests joined since a decode
        self.n_pending = 0
        self.d_last = 0.0  # when the last decode step's tokens went out
        # blocks: a request joined before the last macro-step (`reset_mark`) holds its pages
        # at `reset_ds` plus one per single step since; a later one its blocks at join plus one
        # per single step since
        self.singles = 0  # single decode steps so far
        self.reset_ds = self.reset_singles = self.reset_mark = 0
        self.old_pages = self.n_old = 0
        self.join_blocks = [0] * n
        self.join_singles = [0] * n
        self.new_base = self.n_new = 0  # sum of (blocks at join - singles then), their count
        # reservation: left = min(out - gen, clip) = min(finish - ds, clip)
        self.clip_at = [0] * n  # ds from which the request is under the clip
        self.clipped = [False] * n
        self.unclips: list[tuple[int, int]] = []  # (clip_at, rid)
        self.n_clip = 0
        self.unclipped_finish = self.n_unclipped = 0
        self.n_child = 0  # running requests whose conversation has a next turn
        self.gaps: list[float] = []  # ITL values, each `counts` times
        self.counts: list[int] = []
        self.runs: list[tuple[np.ndarray, int]] = []

    # --- entering and leaving the lazy state ------------------------------------------------
    def _join(self, rid: int) -> None:
        eng = self.eng
        ds = self.ds
        kv = int(eng.kv_len[rid])
        off = kv - ds
        gen_off = int(eng.gen[rid]) - ds
        self.kv_off[rid] = off
        self.gen_off[rid] = gen_off
        order = self.order[rid] = self.next_order
        self.next_order += 1
        self.dec[rid] = None
        self.kv_sum += kv
        self.residue[off % self.page] += 1
        self.pages += -(-kv // self.page)
        finish = self.out[rid] - gen_off
        heapq.heappush(self.finishes, (finish, order, rid))
        blocks = int(eng.blocks[rid])
        self.join_blocks[rid] = blocks
        self.join_singles[rid] = self.singles
        self.new_base += blocks - self.singles
        self.n_new += 1
        self.joined_ds[rid] = ds
        last = float(eng.last_s[rid])
        self.pending[last] = self.pending.get(last, 0) + 1
        self.n_pending += 1
        if finish - ds > self.clip:
            self.clipped[rid] = True
            self.clip_at[rid] = finish - self.clip
            heapq.heappush(self.unclips, (finish - self.clip, rid))
            self.n_clip += 1
        else:
            self.unclipped_finish += finish
            self.n_unclipped += 1
        if self.child[rid] >= 0:
            self.n_child += 1

    def _blocks(self, rid: int) -> int:
        if self.order[rid] >= self.reset_mark:
            return self.join_blocks[rid] + self.singles - self.join_singles[rid]
        return -(-(self.kv_off[rid] + self.reset_ds) // self.page) + (
            self.singles - self.reset_singles
        )

    def _blocks_sum(self) -> int:
        return (
            self.old_pages
            + self.n_old * (self.singles - self.reset_singles)
            + self.new_base
            + self.n_new * self.singles
        )

    def _write(self, rid: int) -> None:
        """Store running request `rid`'s lazy state in the engine's arrays."""
        eng = self.eng
        kv = self.kv_off[rid] + self.ds
        eng.kv_len[rid] = kv
        eng.seq_len[rid] = kv + 1
        eng.gen[rid] = self.gen_off[rid] + self.ds
        eng.blocks[rid] = self._blocks(rid)
        if self.joined_ds[rid] != self.ds:
            eng.last_s[rid] = self.d_last

    def _leave(self, rid: int) -> None:
        self._write(rid)
        del self.dec[rid]
        off = self.kv_off[rid]
        kv = off + self.ds
        self.kv_sum -= kv
        self.residue[off % self.page] -= 1
        self.pages -= -(-kv // self.page)
        if self.order[rid] >= self.reset_mark:
            self.new_base -= self.join_blocks[rid] - self.join_singles[rid]
            self.n_new -= 1
        else:
            self.old_pages -= -(-(off + self.reset_ds) // self.page)
            self.n_old -= 1
        if self.joined_ds[rid] == self.ds:
            last = float(self.eng.last_s[rid])
            left = self.pending[last] - 1
            if left:
                self.pending[last] = left
            else:
                del self.pending[last]
            self.n_pending -= 1
        if self.clipped[rid]:
            self.clipped[rid] = False
            self.n_clip -= 1
        else:
            self.unclipped_finish -= self.out[rid] - self.gen_off[rid]
            self.n_unclipped -= 1
        if self.child[rid] >= 0:
            self.n_child -= 1

    def materialize(self) -> None:
        """Write the lazy state into the engine's arrays and its running order."""
        for rid in self.dec:
            self._write(rid)
        self.eng.running = np.array(list(self.dec), dtype=np.int64)

    def rebuild(self) -> None:
        """Take the lazy state from the engine's arrays (after a step of `_iterate`); the
        engine's running array stays empty while the lazy state holds its requests."""
        self.dec.clear()
        self.kv_sum = self.pages = self.stale = 0
        self.residue = [0] * self.page
        self.finishes = []
        self.pending = {}
        self.n_pending = 0
        self.reset_mark = self.next_order
        self.old_pages = self.n_old = self.new_base = self.n_new = 0
        self.unclips = []
        self.n_clip = self.unclipped_finish = self.n_unclipped = self.n_child = 0
        running = self.eng.running.tolist()
        self.eng.running = np.zeros(0, dtype=np.int64)
        for rid in running:
            self._join(rid)

    def flush_itl(self) -> None:
        eng = self.eng
        if self.gaps:
            eng.itl_pooled.append(
                (np.array(self.gaps, dtype=np.float64), np.array(self.counts, dtype=np.int64))
            )
        for gaps, count in self.runs:
            eng.itl_pooled.append((gaps, np.full(len(gaps), count, dtype=np.int64)))
        self.gaps, self.counts, self.runs = [], [], []

    # --- aggregates --------------------------------------------------------------------------
    def _next_finish(self) -> int:
        """ds at which the first running request finishes (dropping retracted entries)."""
        finishes = self.finishes
        while self.stale:
            _, order, rid = finishes[0]
            if rid in self.dec and self.order[rid] == order:
                break
            heapq.heappop(finishes)
            self.stale -= 1
        return finishes[0][0]

    def _left(self) -> int:
        """Sum over running requests of min(out - gen, clip) (`SglangEngine._reserved`)."""
        ds = self.ds
        unclips = self.unclips
        while unclips and unclips[0][0] <= ds:
            at, rid = heapq.heappop(unclips)
            if self.clipped[rid] and self.clip_at[rid] == at:
                self.clipped[rid] = False
                self.n_clip -= 1
                self.unclipped_finish += self.out[rid] - self.gen_off[rid]
                self.n_unclipped += 1
        return self.clip * self.n_clip + self.unclipped_finish - self.n_unclipped * ds

    def _reserved(self) -> float:
        if not self.dec:
            return 0.0
        return float(self._left()) * self.pol.ratio

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

    def _first_gaps(self, d: float, n: int) -> None:
        """ITL values of a decode step delivered at `d`: from the last decode step, or from
        their own first (or re-prefilled) token for the requests joined since."""
        base = n - self.n_pending
        if base:
            self.gaps.append(d - self.d_last)
            self.counts.append(base)
        for last, count in self.pending.items():
            self.gaps.append(d - last)
            self.counts.append(count)
        self.pending = {}
        self.n_pending = 0

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

"""The lazy state of a simulated SGLang (or MindIE) engine's running requests.

Place in the data flow: `lockstep_sglang.SglangLockstep` derives from `SglangRunning`, which
keeps the running requests of one `scheduler.SglangEngine` against a count of decode steps
(their KV length and tokens generated are an offset plus that count), with the aggregates a
decode stretch needs: count, context sum, first finish, the reservation's clipped remaining
output, the KV pages they hold, and the last-token times of the requests
joined since the last decode step. Requests enter after their prefill batch and leave at a
finish or a retraction, their state written back into the engine's arrays.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Protocol

import numpy as np

from runners.sim.decode_scalar import Plain, is_plain
from runners.sim.replica import ReplicaEngine


class SglangPolicy(Protocol):
    """What the loop needs of `scheduler.SglangEngine` beyond `ReplicaEngine`."""

    partial: int  # the request whose prefill is being chunked, or -1
    ratio: float  # the new-token ratio of the reservation, and its bounds and decay per step
    init_ratio: float
    min_ratio: float
    decay: float
    max_running_req: int
    budget: int  # a prefill batch's token budget

    def _prefill_batch(
        self, n_running: int, reserved: Callable[[], float]
    ) -> tuple[list[int], list[int]]: ...


class SglangRunning:
    """Lazy state of one `SglangEngine`'s running requests (`ds` decode steps taken)."""

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
        self._head = (-1, 0, 0, 0)  # the waiting head `_head_facts` read
        self._head_preemptions = -1  # the engine's preemptions when it read them
        # a `Plain` model's decode step constants per batch size (None: not a `Plain` model)
        self.plains: dict[int, Plain] | None = {} if is_plain(engine.model) else None

    # --- entering and leaving the lazy state ------------------------------------------------
    def _join(self, rid: int) -> None:
        eng = self.eng
        self._enter(rid, eng.kv_len.item(rid), eng.gen.item(rid), float(eng.last_s[rid]))

    def _enter(self, rid: int, kv: int, gen: int, last: float) -> None:
        """`_join` of `rid`, whose KV length, tokens generated and last token time are known
        (they are in the engine's arrays)."""
        ds = self.ds
        page = self.page
        off = kv - ds
        gen_off = gen - ds
        self.kv_off[rid] = off
        self.gen_off[rid] = gen_off
        order = self.next_order
        self.order[rid] = order
        self.next_order = order + 1
        self.dec[rid] = None
        self.kv_sum += kv
        self.residue[off % page] += 1
        self.pages += -(-kv // page)
        finish = self.out[rid] - gen_off
        heapq.heappush(self.finishes, (finish, order, rid))
        self.joined_ds[rid] = ds
        pending = self.pending
        pending[last] = pending.get(last, 0) + 1
        self.n_pending += 1
        if finish - ds > self.clip:
            at = finish - self.clip
            self.clipped[rid] = True
            self.clip_at[rid] = at
            heapq.heappush(self.unclips, (at, rid))
            self.n_clip += 1
        else:
            self.unclipped_finish += finish
            self.n_unclipped += 1
        if self.child[rid] >= 0:
            self.n_child += 1

    def _blocks_sum(self) -> int:
        """Pages the running requests hold: each its KV length's (a prefill batch takes them,
        and every decode step the pages its new token needs)."""
        return self.pages

    def _crossings(self) -> list[int]:
        """cum[i]: the pages the running requests cross into over the next i decode steps
        (i <= page): a request does at each step from a multiple of the page."""
        page = self.page
        if page == 1:
            return [0, len(self.dec)]
        residue = self.residue
        ds = self.ds
        cum = [0] * (page + 1)
        for i in range(page):
            cum[i + 1] = cum[i] + residue[-(ds + i) % page]
        return cum

    def _pages_after(self, k: int, cum: list[int] | None = None) -> int:
        """`pages.pages_after` of k more decode steps (`cum`: `_crossings()`, if at hand)."""
        page = self.page
        base = self.pages + (k // page) * len(self.dec)
        if cum is not None:
            return base + cum[k % page]
        residue = self.residue
        for i in range(k % page):
            base += residue[-(self.ds + i) % page]
        return base

    def _pages_after_run(self, ks: np.ndarray, cum: list[int]) -> np.ndarray:
        """`_pages_after` of each step count in `ks`."""
        base = self.pages + (ks // self.page) * len(self.dec)
        return np.asarray(base + np.array(cum, dtype=np.int64)[ks % self.page], dtype=np.int64)

    def _write(self, rid: int) -> None:
        """Store running request `rid`'s lazy state in the engine's arrays."""
        eng = self.eng
        kv = self.kv_off[rid] + self.ds
        eng.kv_len[rid] = kv
        eng.seq_len[rid] = kv + 1
        eng.gen[rid] = self.gen_off[rid] + self.ds
        eng.blocks[rid] = -(-kv // self.page)
        if self.joined_ds[rid] != self.ds:
            eng.last_s[rid] = self.d_last

    def _leave(self, rid: int) -> None:
        """`rid` leaves the running requests (a retraction), its state written back (`_write`,
        inlined, then `_end`)."""
        eng = self.eng
        ds = self.ds
        kv = self.kv_off[rid] + ds
        eng.seq_len[rid] = kv + 1
        eng.gen[rid] = self.gen_off[rid] + ds
        if self.joined_ds[rid] != ds:
            eng.last_s[rid] = self.d_last
        else:  # its last token is still pending
            last = float(eng.last_s[rid])
            left = self.pending[last] - 1
            if left:
                self.pending[last] = left
            else:
                del self.pending[last]
            self.n_pending -= 1
        eng.blocks[rid] = self._end(rid)

    def _end(self, rid: int) -> int:
        """`rid` leaves the running requests with its KV length written back; returns the
        pages it holds (the caller writes them or releases them). Its KV length and pages are
        all that a request finishing at the last decode step can be read again for (by
        `ReplicaEngine._release`; a finished request never runs or waits again and its record
        takes none of the others, so its tokens, sequence length and last token time stay
        unwritten; it joined before that step, so none of its tokens are pending)."""
        ds = self.ds
        page = self.page
        off = self.kv_off[rid]
        kv = off + ds
        pages = -(-kv // page)
        self.eng.kv_len[rid] = kv
        del self.dec[rid]
        self.kv_sum -= kv
        self.residue[off % page] -= 1
        self.pages -= pages
        if self.clipped[rid]:
            self.clipped[rid] = False
            self.n_clip -= 1
        else:
            self.unclipped_finish -= self.out[rid] - self.gen_off[rid]
            self.n_unclipped -= 1
        if self.child[rid] >= 0:
            self.n_child -= 1
        return pages

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
        self.unclips = []
        self.n_clip = self.unclipped_finish = self.n_unclipped = self.n_child = 0
        running = self.eng.running.tolist()
        self.eng.running = np.zeros(0, dtype=np.int64)
        for rid in running:
            self._join(rid)

    def flush_itl(self) -> None:
        eng = self.eng
        gaps, counts = self.gaps, self.counts
        if gaps:  # `np.fromiter` of a sized list: a quarter cheaper than `np.array` of it
            eng.itl_pooled.append(
                (
                    np.fromiter(gaps, dtype=np.float64, count=len(gaps)),
                    np.fromiter(counts, dtype=np.int64, count=len(counts)),
                )
            )
        for run, count in self.runs:
            eng.itl_pooled.append((run, np.full(len(run), count, dtype=np.int64)))
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

    def _head_facts(self) -> tuple[int, int, int, int]:
        """The waiting head's (id, sequence length, remaining output clipped as the
        reservation counts it, `PrefixCache.hit_ceiling` or 0), read once per head: they do
        not change while it waits, and it can only wait again after a preemption."""
        eng = self.eng
        rid = eng.waiting[0]
        if rid == self._head[0] and eng.preemptions == self._head_preemptions:
            return self._head
        left = eng.out.item(rid) - eng.gen.item(rid)
        cache = eng.cache
        ceiling = cache.hit_ceiling(rid) if cache is not None and cache.has_chain(rid) else 0
        self._head = (rid, eng.seq_len.item(rid), min(left, self.clip), ceiling)
        self._head_preemptions = eng.preemptions
        return self._head

    def _reserved(self) -> float:
        if not self.dec:
            return 0.0
        return float(self._left()) * self.pol.ratio

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

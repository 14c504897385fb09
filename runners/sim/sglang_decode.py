"""The decode stretches of SGLang's (and MindIE's) lockstep loop.

Place in the data flow: `lockstep_sglang.SglangLockstep` derives from `SglangDecode`, which
derives from `sglang_running.SglangRunning` (the lazy state of the running requests). When a
step of `SglangEngine._iterate` runs no prefill batch, `SglangDecode._decode` takes the decode
steps `_iterate` would take one by one up to the next event that can change the batch (a
finish, the pages running out, the waiting head passing the reservation check, an arrival
when nothing waits) as one stretch, priced with `_iterate`'s float operations (a short stretch
of a `decode_scalar.Plain` model priced and delivered in one loop, others by
`StepModel.decode_ends` and NumPy), and releases the requests that finish at its end.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from runners.sim.decode_scalar import Plain, plain_consts
from runners.sim.sglang_running import SglangRunning
from runners.sim.stretch import MACRO_MAX_STEPS

SCALAR_STEPS = 64  # decode steps priced in scalar Python before a stretch switches to NumPy

Ends = tuple[list[float], np.ndarray | None]  # step end times: scalar ones, then a NumPy rest


class SglangDecode(SglangRunning):
    """Decode stretches of an `SglangRunning` state, as `SglangEngine._iterate` takes them."""

    def _decode(self, n: int) -> None:
        """`_iterate`'s decode part: `_decode_k` steps, as one step or a macro-step."""
        eng = self.eng
        pol = self.pol
        finish = self._next_finish() if self.stale else self.finishes[0][0]
        k_hi = finish - self.ds
        if k_hi > MACRO_MAX_STEPS:
            k_hi = MACRO_MAX_STEPS
        if self.page == 1:  # `_free_k` in 1-token pages, where the pages held are `kv_sum`
            k = eng.free // n
            k = 1 if k < 1 else (k_hi if k > k_hi else k)
        else:
            k = self._free_k(n, k_hi)
        ends: Ends | None = None
        if k <= 1:
            k = 1
        elif not eng.waiting:
            t_limit = eng._next_entry_bound_s()
            if math.isfinite(t_limit):
                ends = self._ends(n, k, t_limit)
                k = len(ends[0]) + (0 if ends[1] is None else len(ends[1]))
        elif n < pol.max_running_req:
            k = self._head_k(n, k)
        if k > 1 or self.plains is not None:  # a `Plain` model's single step is `_plain`'s
            self._macro(n, k, ends)
        else:
            self._single(n)
        ratio = pol.ratio - pol.decay * k
        pol.ratio = ratio if ratio > pol.min_ratio else pol.min_ratio

    def _free_k(self, n: int, k_hi: int) -> int:
        """`pages.decode_pages_k` in pages of several tokens (`_decode` has 1-token pages'):
        the most decode steps up to `k_hi` whose new pages fit the free ones (at least 1)."""
        free = self.eng.free + self._blocks_sum()
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
        head = self._head  # `_head_facts`, its check inlined
        if eng.waiting[0] != head[0] or eng.preemptions != self._head_preemptions:
            head = self._head_facts()
        seq_len, head_int = head[1], head[2]
        page = self.page
        # free after j steps: free - _pages_after(j), where free is the free pages plus those
        # held; inlined `_pages_after(j, cum)`: free_j = base - crossed, base the free pages
        base = eng.free
        # step 1 in full, then whether any later step can pass at all (usually none can)
        if page == 1:
            if base - n < seq_len:  # the free pages only shrink over the stretch
                return k
            cum = [0, n]
            free_1 = base - n
        else:
            cum = self._crossings()
            free_1 = base - cum[1]
        seq_pages = -(-seq_len // page)
        if free_1 < seq_pages:  # the free pages only shrink over the stretch
            return k
        free = base + self.pages
        left = float(self._left())
        seq = float(seq_len)
        head_left = float(head_int)
        ratio, decay, min_ratio = pol.ratio, pol.decay, pol.min_ratio
        r = max(min_ratio, ratio - decay * 1)
        if free_1 * page - (left - n * 1) * r >= seq + head_left * r:
            return 1
        if left >= n * k and self._never(n, k, free_1, left, seq, head_left):
            return k
        first = min(k, SCALAR_STEPS)
        for j in range(2, first + 1):
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

    def _ends(self, n: int, k: int, t_limit: float) -> Ends:
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

    def _macro(self, n: int, k: int, ends: Ends | None) -> None:
        """`StretchEngine._macro_decode`: k decode steps; every request holds its KV length's
        pages."""
        eng = self.eng
        plains = self.plains
        if plains is not None and ends is None and k <= SCALAR_STEPS:
            d = self._plain(n, k, plains)
        else:
            d = self._priced(n, k, ends)
        # the pages of kv + k: a request crosses into a new page at each step from a
        # multiple of the page
        pages = self.pages + k * n if self.page == 1 else self._pages_after(k)
        taken = pages - self.pages  # `eng._allocate(taken)`, inlined
        eng.free -= taken
        q_front = eng.q_front + taken
        eng.q_front = q_front if q_front < eng.q_tail else eng.q_tail
        self.pages = pages
        self.ds += k
        eng.steps += k
        self.kv_sum += n * k
        self.d_last = d
        self._finish(d)

    def _plain(self, n: int, k: int, plains: dict[int, Plain]) -> float:
        """`_priced` of a short stretch of a `Plain` model in one loop: each step's end as
        `decode_scalar.decode_ends` sums it, its delivery as `OutputStream.deliver` and
        `deliver_gaps` take it (the same float operations in the same order). The last
        delivery."""
        eng = self.eng
        stream = eng.stream
        plain = plains.get(n)
        if plain is None:
            plain = plains[n] = plain_consts(eng.model, n)
        base, per_ctx, launch, cpu, eps = plain
        now = eng.now
        cost = n * stream.token_s
        ctx = float(self.kv_sum + n)  # the context sums are integers: exact as floats
        gpu = base + ctx * per_ctx
        gpu += launch
        cum = (gpu if gpu >= cpu else cpu) + eps
        end = now + cum
        free = stream.free_s
        d = (end if end > free else free) + cost
        gaps = self.gaps
        if self.n_pending:
            self._first_gaps(d, n)
        else:  # `_first_gaps` when no request joined since the last decode step
            gaps.append(d - self.d_last)
            self.counts.append(n)
        if k > 1:
            step = float(n)
            append = gaps.append
            if gpu >= cpu and per_ctx >= 0.0:
                # the GPU time only grows with the context (each rounded operation is
                # monotone), so every later step is GPU-bound too: `max(gpu, cpu)` is `gpu`,
                # summed in the same order
                for _ in range(k - 1):
                    ctx += step
                    cum += base + ctx * per_ctx + launch + eps
                    end = now + cum
                    free = d
                    d = (end if end > free else free) + cost
                    append(d - free)
            else:
                for _ in range(k - 1):
                    ctx += step
                    gpu = base + ctx * per_ctx
                    gpu += launch
                    cum += (gpu if gpu >= cpu else cpu) + eps
                    end = now + cum
                    free = d
                    d = (end if end > free else free) + cost
                    append(d - free)
            self.counts += [n] * (k - 1)
        stream.free_s = d
        eng.now = end
        return d

    def _priced(self, n: int, k: int, ends: Ends | None) -> float:
        """k decode steps priced by `_ends` (or `ends`, at hand) and delivered; the last
        delivery."""
        eng = self.eng
        stream = eng.stream
        if ends is None and k <= SCALAR_STEPS:  # `_ends` of a short stretch
            scalar = eng.model.decode_ends(n, float(self.kv_sum + n), k, eng.now, math.inf)
            more = None
        else:
            scalar, more = self._ends(n, k, math.inf) if ends is None else ends
        d = stream.deliver(scalar[0], n)
        gaps, counts = self.gaps, self.counts
        if self.n_pending:
            self._first_gaps(d, n)
        else:  # `_first_gaps` when no request joined since the last decode step
            gaps.append(d - self.d_last)
            counts.append(n)
        steps = len(scalar)
        if steps > 1:
            gaps += stream.deliver_gaps(scalar[1:], n, d)
            counts += [n] * (steps - 1)
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
        return d

    def _finish(self, d: float) -> None:
        """`_finish_done`: release the requests that produced their last token at `d`, in
        running order (the heap pops a step's finishes by their join order)."""
        dec, finishes = self.dec, self.finishes  # a decode step ran: someone is running
        if self.stale:
            self._next_finish()
        ds = self.ds
        if finishes[0][0] != ds:
            return
        eng = self.eng
        child, done_s, success = self.child, eng.done_s, eng.success
        prefixes = eng.cache
        held = prefixes.held if prefixes is not None else None
        while True:
            rid = heapq.heappop(finishes)[2]
            pages = self._end(rid)
            if held is not None and held[rid]:
                # `ReplicaEngine._release` of a request holding its chain, inlined: its pages
                # are at hand, and its own beyond its chain join the free queue first
                assert prefixes is not None
                own = pages - prefixes.chain_pages[rid]
                freed = own + prefixes.release(rid, own, eng.q_tail, True)
                eng.q_tail += freed
                eng.free += freed
                eng.blocks[rid] = 0
            else:
                eng.blocks[rid] = pages
                eng._release(rid, cache=child[rid] >= 0)
            done_s[rid] = d
            success[rid] = True
            eng._next_turn(rid, d)
            if not dec:
                return
            if self.stale:
                self._next_finish()
            if finishes[0][0] != ds:
                return

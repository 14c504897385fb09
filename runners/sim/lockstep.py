"""The vLLM scheduler's loop with its decoding requests advanced in aggregate ("lockstep").

Place in the data flow: `scheduler.VllmEngine.run` (TensorRT-LLM's model derives from it) hands
its loop to `Lockstep.run` when the run has no noise. Each running request that is decoding
(one token per step, sampled in the previous step) is kept lazily: its KV length and tokens
generated are an offset plus the replica's step count, its blocks are its KV length's pages and
its last token went out with the previous step's. Per step, the scheduler then needs only
aggregates: their number, their context sum, how many of them cross into a new page (a count
per page residue of the offset) and which finishes first (a heap). The few other running
requests (a prompt being prefilled, requests just admitted) and the admission itself go through
the same scalar rules as `VllmEngine._iterate`, and decode-only stretches between events are
priced step by step in scalar Python (`StepModel.decode_ends`), NumPy only for long ones; a
stretch goes on past a finish that lets no one in (nothing waits, or the queue head still does
not fit). ITL values are pooled as (gap, count) pairs (`RequestRecords.itl_count`), never
expanded. The lazy state and its entries and exits are `lockstep_state.LazyDecoding`; the
decode-only segments and the finishes are `lockstep_decode.DecodingSteps`; while the loop
runs, the engine's per-request arrays are Python lists (`lockstep_state.AS_LISTS`).

Preemption takes the newest requests, lazy or not, as `_iterate` does. Anything else (more
decoding requests than the token budget, which vLLM's own limits rule out) runs through
`VllmEngine._iterate` on the materialized arrays, after which the lockstep state is rebuilt.
The result is the step-by-step simulation's, up to last-bit floating-point differences (sums
grouped differently); `tests/runners/test_sim_lockstep.py` compares the two.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from runners.sim.lockstep_decode import DecodingSteps, Returned
from runners.sim.replica import ReplicaEngine, ReplicaResult

# vLLM's admission: (token budget left, requests running, admitted ids, their tokens, whether
# the queue head is known to pass `_blocked` with that budget) -> None
Admit = Callable[[int, int, list[int], list[int], bool], None]


class Lockstep(DecodingSteps):
    """The loop that advances one `VllmEngine` with its decoding requests kept lazily."""

    def __init__(
        self, engine: ReplicaEngine, budget: int, admit: Admit, returned: Returned | None
    ) -> None:
        super().__init__(engine, returned)
        self.budget = budget
        self.admit = admit
        # the last queue head `_blocked` refused (`remember`): its id, its budget and the pages
        # it needs at least (while it stays the head, no one has been admitted since)
        self.cert_rid = -1
        self.cert_budget = 0
        self.cert_need = 0

    # --- the loop -----------------------------------------------------------------------
    def run(self) -> ReplicaResult:
        """`ReplicaEngine.run` with `step` in place of `_iterate`."""
        eng = self.eng
        sends, entries, ingest = eng.sends, eng.entries, eng.ingest
        self._to_lists()
        self.rebuild()
        while True:
            now = eng.now
            # nothing to absorb: no send or entry due, no ingestion in progress (to advance)
            if (sends and sends[0][0] <= now) or (entries and entries[0][0] <= now) or ingest.busy:
                eng._absorb_arrivals()
            if not self.dec and not self.part and not eng.waiting:
                if not eng._wait_for_event(stuck=False):
                    break
                continue
            progressed = self.step()
            if progressed is None:
                self._to_arrays()
                self.materialize()
                progressed = eng._iterate()
                self.cert_rid = -1  # it may have preempted (and remembered on arrays)
                self.rebuild()
                self._to_lists()
                eng.max_running = max(eng.max_running, len(self.dec) + len(self.part))
            if not progressed and not eng._wait_for_event(stuck=True):
                break
        self._to_arrays()
        self.materialize()
        self.flush_itl()
        return ReplicaResult(eng._records(), eng.steps, eng.preemptions, eng.max_running)

    def step(self) -> bool | None:
        """One `VllmEngine._iterate` (a step, or a decode stretch); None when it needs the
        arrays (more decoding requests than the token budget)."""
        eng = self.eng
        budget = self.budget
        n_dec = len(self.dec)
        if n_dec > budget:
            return None
        page = self.page
        if not self.part:
            decoded = self._decode_on(n_dec)
            if decoded is not None:
                return decoded
        elif len(self.part) == 1:
            rid = self.part[0]
            tok = budget - n_dec  # a chunk of all that budget that is not the prompt's last
            if tok > 0 and eng.seq_len[rid] - eng.kv_len[rid] - tok >= 2 and self._chunk(rid, tok):
                return True
            one = self._one_part(rid, n_dec)
            if one is not None:
                return one
        kv_len, seq_len, blocks = eng.kv_len, eng.seq_len, eng.blocks
        before = need_sum = n_dec
        part_tok: list[int] = []
        grow: list[int] = []
        total = self.residue[-eng.steps % page]
        for rid in self.part:
            kv = int(kv_len[rid])
            need = int(seq_len[rid]) - kv
            tok = min(max(budget - before, 0), need)
            before += need
            need_sum += need
            g = max(-(-(kv + tok) // page) - int(blocks[rid]), 0) if tok > 0 else 0
            part_tok.append(tok)
            grow.append(g)
            total += g
        preempted = total > eng.free
        if preempted:
            total = self._preempt(total, grow)
            del part_tok[len(self.part) :]
            n_dec = len(self.dec)
        eng._allocate(total)
        for rid, g in zip(self.part, grow, strict=True):
            if g:
                blocks[rid] += g
        admitted: list[int] = []
        admitted_tok: list[int] = []
        left = budget - need_sum  # else no budget is left
        if eng.waiting and not preempted and left > 0 and not self._known_refused(left):
            self.admit(left, n_dec + len(self.part), admitted, admitted_tok, False)
        ids = [r for r, t in zip(self.part, part_tok, strict=True) if t > 0] + admitted
        toks = [t for t in part_tok if t > 0] + admitted_tok
        if not n_dec and not ids:
            return False
        self._mixed(ids, toks, admitted)
        return True

    def _decode_on(self, n_dec: int) -> bool | None:
        """`step` when only the `n_dec` decoding requests run (at most the budget): the
        step's blocks are taken (as `_allocate`) and the queue is tried; when no one is
        admitted, a decode stretch (`_segment`s) up to its first finish, the free blocks, or
        the first step that reaches the next possible entry. A finish that lets no one in
        does not end the stretch: the set decodes on without it, as the step-by-step loop
        would; here that is the next step's blocks taken and the queue head refused
        (`remember`; arrivals due are absorbed first unless the head is refused and no
        client has a request left to send: they would only join the queue behind it, and a
        rejected one's client would send its next request, which must not come after later
        finishes' sends). Returns None, having changed nothing, when the first step's blocks
        do not fit (a preemption); False when nothing runs; else True."""
        eng = self.eng
        budget, page, residue, waiting = self.budget, self.page, self.residue, eng.waiting
        finished = False  # a stretch ran to a finish: this is the step after it
        t_limit = math.inf
        while True:
            if finished and eng.next_client < len(eng.roots):
                self._absorb_due()
                absorb = False
            else:
                absorb = finished
            total = residue[-eng.steps % page]
            if total > eng.free:
                return True if finished else None
            eng.free -= total  # `_allocate`
            front = eng.q_front + total
            eng.q_front = front if front < eng.q_tail else eng.q_tail
            left = budget - n_dec
            if waiting and left > 0:
                head = waiting[0]
                if (
                    head == self.cert_rid
                    and left >= self.cert_budget
                    and self.cert_need > eng.free
                ):
                    pass  # refused again
                elif eng._blocked(head, left):
                    self.remember(head, left)
                else:
                    if absorb:
                        self._absorb_due()
                    admitted: list[int] = []
                    admitted_tok: list[int] = []
                    self.admit(left, n_dec, admitted, admitted_tok, True)
                    if len(admitted) == 1 and admitted_tok[0] == left:
                        # one admitted, its prompt's chunk takes all the budget left: unless
                        # that completes it, only the decoding requests sample
                        rid = admitted[0]
                        kv0 = eng.kv_len[rid]
                        if kv0 + left < eng.seq_len[rid]:
                            self.order[rid] = self.next_order
                            self.next_order += 1
                            self._chunk_step(rid, kv0, left)
                            self.part = admitted
                            if len(self.dec) + 1 > eng.max_running:
                                eng.max_running = len(self.dec) + 1
                            return True
                    if admitted:
                        self._mixed(admitted, admitted_tok, admitted)
                        return True
            if not finished:
                if not n_dec:
                    return False
                finished = True
                if not waiting:
                    t_limit = eng._next_entry_bound_s()
            while True:
                sends = len(eng.sends)
                if not self._segment(t_limit) or not self.dec:
                    return True
                if waiting:
                    break
                if len(eng.sends) != sends or eng.now >= t_limit:
                    return True
                # the next step's blocks, as `step` takes them (a preemption is left to it)
                crossing = residue[-eng.steps % page]
                if crossing > eng.free:
                    return True
                eng._allocate(crossing)
            n_dec = len(self.dec)
            if n_dec > budget:
                return True

    def _known_refused(self, budget: int) -> bool:
        """The queue head is refused with `budget` by its remembered pages (`remember`)."""
        return (
            self.eng.waiting[0] == self.cert_rid
            and budget >= self.cert_budget
            and self.cert_need > self.eng.free
        )

    def remember(self, rid: int, budget: int) -> None:
        """Queue head `rid` was refused with `budget` (`ReplicaEngine._blocked`; `VllmEngine`
        tells here while the loop runs): the pages it needs at least are remembered
        (`cert_need`). While it stays the head (no one else can be admitted, and a
        preemption forgets them) its chain's unheld pages only grow, and with a larger budget
        it computes no fewer tokens, so while the free pages stay below them it is refused
        again without asking."""
        self.cert_rid, self.cert_budget = rid, budget
        self.cert_need = self.eng._least_pages(rid, budget)

    def _absorb_due(self) -> None:
        """`run`'s absorption of the sends and entries due (and of ingestion in progress)."""
        eng = self.eng
        now, sends, entries = eng.now, eng.sends, eng.entries
        if (sends and sends[0][0] <= now) or (entries and entries[0][0] <= now) or eng.ingest.busy:
            eng._absorb_arrivals()

    def _one_part(self, rid: int, n_dec: int) -> bool | None:
        """`step` when `rid` is the one running request outside the lockstep (what is left of
        its prompt, or a token) and no one is preempted: the general path without its lists;
        None, having changed nothing, when this step's blocks do not fit."""
        eng = self.eng
        budget = self.budget
        kv = eng.kv_len[rid]
        need = eng.seq_len[rid] - kv
        left = budget - n_dec
        tok = need if need < left else (left if left > 0 else 0)
        grow = -(-(kv + tok) // self.page) - eng.blocks[rid] if tok > 0 else 0
        if grow < 0:
            grow = 0
        total = self.residue[-eng.steps % self.page] + grow
        if total > eng.free:
            return None
        eng._allocate(total)
        if grow:
            eng.blocks[rid] += grow
        admitted: list[int] = []
        admitted_tok: list[int] = []
        left = budget - n_dec - need  # else no budget is left
        if eng.waiting and left > 0 and not self._known_refused(left):
            self.admit(left, n_dec + 1, admitted, admitted_tok, False)
        if tok > 0:
            self._mixed([rid, *admitted], [tok, *admitted_tok], admitted)
        elif n_dec or admitted:
            self._mixed(admitted, admitted_tok, admitted)
        else:
            return False
        return True

    def _chunk(self, rid: int, tok: int) -> bool:
        """`step` when `rid`, the one running request outside the lockstep, computes a chunk
        of `tok` tokens of its prompt, all the token budget the decoding requests leave and
        not its last (`step` checks that, so nothing is admitted and only the decoding
        requests sample), and no one is preempted: the same operations as the general path
        and `_mixed`, without their lists. False, having changed nothing, when this step's
        blocks do not fit."""
        eng = self.eng
        page = self.page
        kv0 = eng.kv_len[rid]
        grow = -(-(kv0 + tok) // page) - eng.blocks[rid]
        if grow < 0:
            grow = 0
        total = self.residue[-eng.steps % page] + grow
        if total > eng.free:
            return False
        eng._allocate(total)
        eng.blocks[rid] += grow
        self._chunk_step(rid, kv0, tok)
        return True

    def _chunk_step(self, rid: int, kv0: int, tok: int) -> None:
        """`_mixed` of a step in which `rid` computes `tok` tokens of its prompt after its
        `kv0`, all the budget the decoding requests leave and not its last, and only the
        decoding requests sample: the same operations without its lists."""
        eng = self.eng
        n_dec = self.budget - tok
        eng.kv_len[rid] = kv0 + tok
        c, p = float(tok), float(kv0)
        flop_units = 0.0
        flop_units += c * (p + (c + 1.0) * 0.5)
        ctx = float(self.kv_sum + n_dec)
        dt = eng.model.step_s(n_dec + tok, n_dec + 1, n_dec, ctx, flop_units, c + p)
        eng.now += dt
        eng.steps += 1
        self.kv_sum += n_dec
        if n_dec:
            d = eng.stream.deliver(eng.now, n_dec)
            self.gaps.append(d - self.d_last)
            self.counts.append(n_dec)
            self.d_last = d
            self._finish([], d)

    def _preempt(self, total: int, grow: list[int]) -> int:
        """`_iterate`'s preemption: the newest running requests go back to the queue until
        this step's new blocks (`total`; `grow` of the others) fit. Returns what is left."""
        eng = self.eng
        self.cert_rid = -1  # a preempted request goes to the head of the queue
        avail = eng.free
        part = self.part
        while total > avail and part:
            rid = part.pop()
            total -= grow.pop()
            avail += int(eng.blocks[rid])
            eng._preempt(rid)
        crossing = -eng.steps % self.page
        left = len(self.dec)
        while total > avail and self.dec:
            rid = next(reversed(self.dec))
            kv_off = self.kv_off[rid]
            total -= kv_off % self.page == crossing
            avail += -(-(kv_off + eng.steps) // self.page)
            self._leave(rid)
            eng._preempt(rid)
        if len(self.dec) < left:
            self._drop_finishes()
        return total

    # --- one step with requests outside the lockstep --------------------------------------
    def _mixed(self, ids: list[int], toks: list[int], admitted: list[int]) -> None:
        """`_execute` + `_emit` of one step: the decoding requests plus `ids` (running ones,
        then those just `admitted`) computing `toks` tokens each (their blocks held). The
        running count only grows here, so the engine's maximum is taken here."""
        eng = self.eng
        order, out = self.order, self.out
        at = self.next_order
        for rid in admitted:
            order[rid] = at
            at += 1
        self.next_order = at
        kv_len, seq_len = eng.kv_len, eng.seq_len
        n_dec = len(self.dec)
        tokens = n_dec + sum(toks)
        n_ids = n_dec + len(ids)
        ctx = self.kv_sum + n_dec
        flop_units = kv_toks = 0.0
        pre_tok = pre_kv = 0
        sampled: list[int] = []
        decode = True
        for rid, tok in zip(ids, toks, strict=True):
            kv0 = kv_len[rid]
            kv1 = kv0 + tok
            kv_len[rid] = kv1
            done = kv1 == seq_len[rid]
            if done:
                sampled.append(rid)
            if done and tok == 1:
                ctx += kv1
            else:
                decode = False
                c, p = float(tok), float(kv0)
                flop_units += c * (p + (c + 1.0) * 0.5)
                pre_tok += tok
                pre_kv += kv0
        if decode and tokens == n_ids:
            flop_units = 0.0
        else:
            kv_toks = float(pre_tok) + float(pre_kv)
        n_sampled = n_dec + len(sampled)
        dt = eng.model.step_s(tokens, n_ids, n_sampled, float(ctx), flop_units, kv_toks)
        eng.now += dt
        eng.steps += 1
        self.kv_sum += n_dec
        if not n_sampled:
            self.part += admitted
            running = n_dec + len(self.part)
            if running > eng.max_running:
                eng.max_running = running
            return
        d = eng.stream.deliver(eng.now, n_sampled)
        gaps, counts = self.gaps, self.counts
        if n_dec:
            gaps.append(d - self.d_last)
            counts.append(n_dec)
        self.d_last = d
        firsts: list[int] = []
        ended: list[tuple[int, int]] = []
        gen, last_s, first_s = eng.gen, eng.last_s, eng.first_s
        for rid in sampled:
            g = gen[rid]
            if g > 0:
                gaps.append(d - last_s[rid])
                counts.append(1)
            else:
                first_s[rid] = d
                firsts.append(rid)
            last_s[rid] = d
            g += 1
            gen[rid] = g
            seq_len[rid] += 1
            if g >= out[rid]:
                ended.append((order[rid], rid))
        if firsts and eng.cache is not None:
            eng.cache.computed_ids(firsts)
        part = self.part + admitted if self.part else admitted
        if ended:  # some of them are done
            self._finish(ended, d)
            success = eng.success
            part = [r for r in part if not success[r]]
        elif self.dec and self.finishes[0][0] == eng.steps:  # `_finish`'s own test
            self._finish(ended, d)
        # requests that completed their prompt join the lockstep, in running order (only one
        # sampled now can: its last token went out now)
        if part and last_s[part[0]] == d:
            # the leading ones that are decoding join the lazy state (`_decoding`, `_join`)
            steps, page, blocks = eng.steps, self.page, eng.blocks
            dec, kv_off, gen_off, residue = self.dec, self.kv_off, self.gen_off, self.residue
            joined = 0
            for rid in part:
                kv = kv_len[rid]
                g = gen[rid]
                if not (
                    seq_len[rid] - kv == 1
                    and g > 0
                    and last_s[rid] == d
                    and blocks[rid] == -(-kv // page)
                ):
                    break
                off = kv - steps
                kv_off[rid] = off
                gen_off[rid] = g - steps
                dec[rid] = None
                self.kv_sum += kv
                residue[off % page] += 1
                heapq.heappush(self.finishes, (out[rid] - (g - steps), order[rid], rid))
                joined += 1
            part = part[joined:] if joined else part
        self.part = part
        running = len(self.dec) + len(self.part)
        if running > eng.max_running:
            eng.max_running = running

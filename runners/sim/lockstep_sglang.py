"""SGLang's (and MindIE's) scheduler loop with its running requests advanced in aggregate.

Place in the data flow: `scheduler.SglangEngine.run` (MindIE's model derives from it) hands its
loop to `SglangLockstep.run` when the run has no noise, as `VllmEngine.run` hands its own to
`lockstep.Lockstep`. In SGLang's model every running request decodes (a prompt joins the running
set once its prefill batch sampled its first token), and a step is either a prefill batch alone or
a decode step of the whole set, so the running requests are kept lazily
(`sglang_running.SglangRunning`) against a count of decode steps. A decode stretch then needs their
aggregates only (`sglang_decode.SglangDecode`), and its KV pages follow `_iterate`'s rule: a
running request holds its KV length's pages, so a decode step takes a page for each request whose
KV fills its pages (every request in SGLang's 1-token pages, every 128th step in MindIE's blocks).
This module keeps the loop and the prefill batches, executed in scalar Python with `_iterate`'s
float operations; a batch the waiting head is known to be refused from is not built
(`_refused`); admission (`SglangEngine._prefill_batch`) and retraction use the engine's own
methods. A drain
(nothing can enter any more) runs `_iterate` on the materialized arrays, after which the lazy state
is rebuilt. The result is the step-by-step loop's up to last-bit floating-point differences;
`tests/runners/test_sim_lockstep_sglang.py` compares the two.
"""

from __future__ import annotations

from runners.sim.replica import ReplicaResult
from runners.sim.sglang_decode import SglangDecode


class SglangLockstep(SglangDecode):
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
        dec = self.dec  # cleared and refilled in place, never replaced
        self.rebuild()
        while True:
            now = eng.now
            if (sends and sends[0][0] <= now) or (entries and entries[0][0] <= now) or ingest.busy:
                eng._absorb_arrivals()
            if not dec and not eng.waiting and pol.partial < 0:
                if not eng._wait_for_event(stuck=False):
                    break
                continue
            progressed = self.step()
            if progressed is None:
                self.materialize()
                progressed = eng._iterate()
                self.rebuild()
            if len(dec) > eng.max_running:
                eng.max_running = len(dec)
            if not progressed and not eng._wait_for_event(stuck=True):
                break
        self.materialize()
        self.flush_itl()
        return ReplicaResult(eng._records(), eng.steps, eng.preemptions, eng.max_running)

    def step(self) -> bool | None:
        """One `SglangEngine._iterate`; None when it needs the arrays (a drain)."""
        eng = self.eng
        pol = self.pol
        dec = self.dec
        if dec and not eng.waiting and self._draining():
            return None
        if not self._refused() and self._prefill():
            return True
        n = len(dec)
        if not n:
            return False
        # retraction: the newest requests go back to the queue until one decode step's new
        # pages fit (in 1-token pages, one each)
        need = n if self.page == 1 else self._pages_after(1) - self._blocks_sum()
        if eng.free < need:
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
        being chunked and the waiting head is refused, for a chained head by the reservation
        check against its most possible hit (`SglangAdmission._prefill_batch`'s first check,
        the same float operations) or by a lower bound of the pages it takes (`_blocked`,
        exact at the chain's last look while no one was admitted since), so nothing else is
        evaluated.
        False: build the batch."""
        pol = self.pol
        if pol.partial >= 0:
            return False
        eng = self.eng
        if not eng.waiting:
            return True
        if len(self.dec) >= pol.max_running_req or pol.budget <= 0:
            return True  # `_admit` takes no one
        head = self._head  # `_head_facts`, its check inlined (it runs about twice a request)
        if eng.waiting[0] != head[0] or eng.preemptions != self._head_preemptions:
            head = self._head_facts()
        rid, seq, left, ceiling = head
        if not ceiling:  # not chained (or nothing to hit): `_admit` decides
            return False
        page = self.page
        last = (seq - 1) // page
        most = ceiling // page
        extend = seq - (most if most < last else last) * page
        if extend > eng.free * page:  # refused whatever the reservation (it is >= 0)
            return True
        # `_reserved`, inlined
        rem = eng.free * page - (float(self._left()) * pol.ratio if self.dec else 0.0)
        if extend + left * pol.ratio > rem:
            return True
        # its pages (`ReplicaEngine._take_chained`: its chain's unheld segments, then its own
        # beyond the chain for at least min(prompt, budget) tokens) cannot fit
        return eng._blocked(rid, pol.budget)

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
        sampled: list[tuple[int, int]] = []  # (rid, its KV length)
        for rid, tok in zip(ids, toks, strict=True):
            kv0 = kv_len.item(rid)
            kv1 = kv0 + tok
            if kv1 == seq_len.item(rid):
                sampled.append((rid, kv1))
                if tok == 1:  # one token that completes the sequence: a decode
                    ctx += kv1
                    continue
            else:  # still chunked (a request that samples has its KV written below)
                kv_len[rid] = kv1
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
        for rid, kv in sampled:
            g = gen.item(rid)
            if g > 0:
                self.gaps.append(d - float(last_s[rid]))
                self.counts.append(1)
            else:
                eng.first_s[rid] = d
                firsts.append(rid)
            last_s[rid] = d
            if g + 1 >= out[rid]:
                kv_len[rid] = kv
                gen[rid] = g + 1
                seq_len[rid] = kv + 1
                finished.append(rid)
            else:  # its KV length and tokens live in the lazy state until it leaves (its
                # joining reads nothing the prefix cache or the releases below change)
                self._enter(rid, kv, g + 1, d)
        if firsts and eng.cache is not None:  # `_first_tokens`, without the array
            eng.cache.computed_ids(firsts)
        for rid in finished:
            eng._release(rid, cache=self.child[rid] >= 0)
            eng.done_s[rid] = d
            eng.success[rid] = True
            eng._next_turn(rid, d)
        return True

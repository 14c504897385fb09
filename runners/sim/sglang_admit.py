"""SGLang's prefill batch: the chunked prompt's next chunk, then the queue heads it admits.

Place in the data flow: `scheduler.SglangEngine` (and MindIE's model, which derives from it)
derives from `SglangAdmission`, whose `_prefill_batch` builds each prefill batch, in both the
step-by-step loop and the lockstep loop (`lockstep_sglang.SglangLockstep._prefill`): the
request whose prompt is being chunked continues first, then queue heads are admitted with
SGLang's PrefillAdder checks (the reservation of the running requests' remaining output
against the free pool, then the pages the head takes) until one is refused or the batch is
full. A head whose prompt is a chain of prefix segments takes its pages and holds its chain's
segments (`ReplicaEngine._take_chained`, as vLLM's admission does).

On an overloaded trace a batch is built after almost every decode stretch and its last head
is refused by the reservation, so a chained head's check first runs with the most it could hit
(`PrefixCache.hit_ceiling`, no chain walk): the same float operations on a smaller integer,
so it refuses only heads the full check refuses. Then the chain is looked at once
(`PrefixCache._look`) for the hit and the pages. The loop is one method with the chained
case inlined: it runs about twice per prefill batch, where each call it made cost as much as
its checks.
"""

from __future__ import annotations

from collections.abc import Callable

from runners.sim.stretch import StretchEngine

SGLANG_CLIP_MAX_NEW_TOK = 4096  # SGLang CLIP_MAX_NEW_TOKENS_ESTIMATION


class SglangAdmission(StretchEngine):
    """The prefill batches of SGLang's scheduler (its settings are set by `_configure`)."""

    budget: int  # a prefill batch's token budget
    max_prefill_batch: int  # requests a prefill batch takes at most (0: no limit)
    max_running_req: int
    ratio: float  # the reservation's new-token ratio
    partial: int  # the request whose prefill is being chunked, or -1

    def _prefill_batch(
        self, n_running: int, reserved: Callable[[], float]
    ) -> tuple[list[int], list[int]]:
        """The next prefill batch (ids, tokens each), its blocks taken: the chunked request's
        next chunk, then admissions; `n_running` requests decode, holding `reserved()`."""
        budget = self.budget
        page = self.page
        ids: list[int] = []
        toks: list[int] = []
        if self.partial >= 0:
            rid = self.partial
            kv, seq = self.kv_len.item(rid), self.seq_len.item(rid)
            n = seq - kv if seq - kv < budget else budget
            # the pages of its KV after the chunk beyond those it holds (a chained request's
            # chain pages were taken at admission)
            held = self.blocks.item(rid)
            grow = -(-(kv + n) // page) - held
            if grow < 0:
                grow = 0
            if grow > self.free:
                return ids, toks
            self._allocate(grow)
            self.blocks[rid] = held + grow
            ids.append(rid)
            toks.append(n)
            budget -= n
            if kv + n < seq:
                return ids, toks  # still chunked: no admission
            self.partial = -1
        waiting = self.waiting
        if not waiting or budget <= 0:
            return ids, toks
        # admissions, as SGLang's PrefillAdder counts them: `rem` tokens beyond the reservation
        rem = self.free * page - reserved()
        room = self.max_running_req - n_running  # requests the batch may still take
        cap = self.max_prefill_batch
        ratio = self.ratio
        chunked = self.config.chunked_prefill
        out, gen, seq_len = self.out, self.gen, self.seq_len
        cache = self.cache
        offsets = cache.offsets if cache is not None else []
        while waiting and budget > 0:
            if len(ids) >= room or 0 < cap <= len(ids):
                break
            rid = waiting[0]
            left = out.item(rid) - gen.item(rid)
            if left > SGLANG_CLIP_MAX_NEW_TOK:
                left = SGLANG_CLIP_MAX_NEW_TOK
            seq = seq_len.item(rid)
            if cache is not None and offsets[rid + 1] > offsets[rid]:  # `_chained`
                last = (seq - 1) // page  # a hit leaves at least the prompt's last token
                most = cache.hit_ceiling(rid) // page
                if seq - (most if most < last else last) * page + left * ratio > rem:
                    break
                looked = cache._look(rid, self.q_front)
                hit_pages = looked[2] // page
                hit = (hit_pages if hit_pages < last else last) * page
                extend = seq - hit
                if not chunked and extend > budget and ids:
                    break
                n = extend if not chunked or extend < budget else budget
                cost = extend + left * ratio
                if cost > rem or not self._take_chained(rid, hit, hit + n, looked[3], looked[4]):
                    break
            else:
                hit_pages = self._cached_hit_blocks(rid)
                hit = hit_pages * page
                extend = seq - hit
                if not chunked and extend > budget and ids:
                    break
                n = min(extend, budget) if chunked else extend
                cost = extend + left * ratio
                # its cached pages come back from the free queue, the rest are allocated
                held = -(-(hit + n) // page)
                if cost > rem or held > self.free:
                    break
                self.free -= hit_pages
                self._allocate(held - hit_pages)
                self.cache_blocks[rid] = 0
                self.kv_len[rid] = hit
                self.blocks[rid] = held
            rem -= cost
            budget -= n
            waiting.popleft()
            ids.append(rid)
            toks.append(n)
            if n < extend:
                self.partial = rid
                break
        return ids, toks

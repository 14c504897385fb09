"""The scheduler models of the simulated engines, and `run_replica` that runs one instance.

Third stage of `simulate`: given one replica's `RequestSet`, its KV capacity from
`memory.plan_memory` and its `perf.StepModel`, `run_replica` builds the scheduler model the
engine's simulator policy names (on the shared mechanics of `replica.ReplicaEngine` and the
macro-steps of `stretch.StretchEngine`) and returns the per-request `RequestRecords`.
`VllmEngine` follows the vLLM V1 scheduler (token budget, running first, chunked prefill, block
allocation, preempt-the-tail with LRU-retained prefix blocks); `SglangEngine` follows SGLang
(token pool, prefill batches before decode, new-token reservation, retraction); `TrtllmEngine`
adds TensorRT-LLM's capacity scheduler (GUARANTEED_NO_EVICT reserves each request's whole output
at admission and never preempts; MAX_UTILIZATION behaves like vLLM); `MindieEngine` runs
MindIE's separate prefill batches (maxPrefillBatchSize, maxPrefillTokens, no chunking) and decode
batches up to maxBatchSize with on-demand blocks. Noiseless runs go through the lockstep loops
(`lockstep.Lockstep`, `lockstep_sglang.SglangLockstep`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from runners.bench.records import BoolArray, IntArray
from runners.engines import SchedulerKind, sim_policy
from runners.sim.acyclic import acyclic
from runners.sim.lockstep import Lockstep
from runners.sim.lockstep_sglang import SglangLockstep
from runners.sim.pages import decode_pages_k, pages_after
from runners.sim.params import Noise
from runners.sim.perf import StepModel
from runners.sim.replica import ReplicaEngine, ReplicaResult, ceil_div
from runners.sim.sglang_admit import SGLANG_CLIP_MAX_NEW_TOK, SglangAdmission
from runners.sim.stretch import MACRO_MAX_STEPS, StretchEngine
from runners.types import ServingConfig
from runners.workload import RequestSet

SGLANG_INIT_RATIO = 0.7  # SGLANG_INIT_NEW_TOKEN_RATIO
SGLANG_MIN_RATIO_FACTOR = 0.14  # SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR
SGLANG_RATIO_DECAY_STEPS = 600  # SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS


def _forget(rid: int, budget: int) -> None:
    """`VllmEngine.refusal` outside the lockstep loop: nothing remembers a refusal."""


class VllmEngine(StretchEngine):
    """vLLM V1 `Scheduler.schedule` semantics."""

    # run through `Lockstep` when noiseless (its rules are `_iterate`'s); a class variable,
    # which tests can switch off to compare with the step-by-step loop, also when compiled
    lockstep: ClassVar[bool] = True
    refusal: Callable[[int, int], None]  # told of a queue head `_blocked` refuses (and budget)
    reserves_output = False  # whether `_returned` gives pages back (TRT-LLM's no-evict)

    def run(self) -> ReplicaResult:
        if self.lockstep and self.noise is None:
            returned = self._returned if self.reserves_output else None
            lockstep = Lockstep(self, self.budget, self._admit, returned)
            self.refusal = lockstep.remember
            try:
                return lockstep.run()
            finally:
                self.refusal = _forget  # no cycle left: refcounting frees the run's objects
        return super().run()

    def _returned(self, rid: int) -> None:
        """What finished request `rid` held beyond its blocks goes back (nothing in vLLM)."""

    def _configure(self, config: ServingConfig, kv_tokens: int) -> None:
        super()._configure(config, kv_tokens)
        self.budget = config.max_num_batched_tokens * self.dp
        self.max_seqs = max(1, config.max_num_seqs) * self.dp
        self.refusal = _forget

    def _iterate(self) -> bool:
        r = self.running
        bs = self.page
        kv = self.kv_len[r]
        need = self.seq_len[r] - kv
        need_sum = int(need.sum())
        whole = need_sum <= self.budget  # every running request gets all it needs (>= 1)
        if whole:
            tok = need
            new_blocks = np.maximum(ceil_div(kv + tok, bs) - self.blocks[r], 0)
        else:
            before = np.cumsum(need) - need
            tok = np.minimum(np.maximum(self.budget - before, 0), need)
            new_blocks = np.where(tok > 0, ceil_div(kv + tok, bs) - self.blocks[r], 0)
            new_blocks = np.maximum(new_blocks, 0)
        total = int(new_blocks.sum())
        preempted = False
        if total > self.free:
            keep = len(r)
            avail = self.free
            while total > avail and keep > 0:
                keep -= 1
                total -= int(new_blocks[keep])
                avail += int(self.blocks[r[keep]])
                self._preempt(int(r[keep]))
            r, tok, new_blocks = r[:keep], tok[:keep], new_blocks[:keep]
            self.running = r
            preempted = True
        self._allocate(total)  # the kept requests' new blocks
        if total:
            self.blocks[r] += new_blocks
        admitted: list[int] = []
        admitted_tok: list[int] = []
        if not preempted:
            scheduled = min(need_sum, self.budget)  # = tok.sum()
            self._admit(self.budget - scheduled, len(r), admitted, admitted_tok)
        if whole and not preempted:
            ids, toks = r, tok
        else:
            sched = tok > 0
            ids = r[sched]
            toks = tok[sched]
        if admitted:
            self.running = np.concatenate([r, np.array(admitted, dtype=np.int64)])
            ids = np.concatenate([ids, np.array(admitted, dtype=np.int64)])
            toks = np.concatenate([toks, np.array(admitted_tok, dtype=np.int64)])
        if ids.size == 0:
            return False
        # every running request decodes one token (all need >= 1: they sum to their count)
        if not admitted and not preempted and need_sum == r.size and ids.size == r.size:
            if self._draining():
                k = self._drain_k()
                if k > 1:
                    self._macro_drain(k)
                    return True
            k = self._decode_k()
            if k == int((self.out[r] - self.gen[r]).min()) and self._passing():
                # the stretch would stop at a finish that lets nothing in: run through it
                k_pass = self._pass_k(self._next_entry_bound_s())
                if k_pass > k:
                    self._macro_drain(k_pass)
                    return True
            if k > 1:
                self._macro_decode(k)
                return True
        self._execute(ids, toks)
        return True

    def _decode_k(self) -> int:
        r = self.running
        k = min(int((self.out[r] - self.gen[r]).min()), MACRO_MAX_STEPS)
        k = self._decode_blocks_k(r, k)
        t_limit = self._next_entry_bound_s() if not self.waiting else math.inf
        return self._macro_len(k, t_limit)

    def _admit(
        self, budget: int, n_running: int, ids: list[int], toks: list[int], fits: bool = False
    ) -> None:
        """Admit waiting requests in FCFS order until budget, sequences or blocks run out
        (`fits`: the queue head is known not to be `_blocked` with this budget)."""
        waiting, max_seqs, cache = self.waiting, self.max_seqs, self.cache
        while waiting and budget > 0 and n_running + len(ids) < max_seqs:
            rid = waiting[0]
            # `_admit_one`'s dispatch, inline: a long trace's queue head is tried every step
            if cache is not None and cache.offsets[rid + 1] > cache.offsets[rid]:
                if not self._admit_chained_head(rid, budget, ids, toks, fits):
                    break
            elif not self._admit_one(budget, ids, toks):
                break
            fits = False
            budget -= toks[-1]

    def _admit_one(self, budget: int, ids: list[int], toks: list[int]) -> bool:
        """Admit the head of the queue (prefix-cache hit in whole blocks) if it fits; whether
        it did."""
        bs = self.page
        rid = self.waiting[0]
        if self.cache is not None and self.cache.has_chain(rid):
            return self._admit_chained_head(rid, budget, ids, toks)
        hit_blocks = self._cached_hit_blocks(rid)
        hit_tok = hit_blocks * bs
        n = int(self.seq_len[rid]) - hit_tok
        if not self.config.chunked_prefill and n > budget:
            return False
        n = min(n, budget)
        need_blocks = -(-(hit_tok + n) // bs) - hit_blocks
        if need_blocks + hit_blocks > self.free:
            return False
        self.free -= hit_blocks
        self._allocate(need_blocks)
        self.cache_blocks[rid] = 0
        self.kv_len[rid] = hit_tok
        self.blocks[rid] = hit_blocks + need_blocks
        self.waiting.popleft()
        ids.append(rid)
        toks.append(n)
        return True

    def _admit_chained_head(
        self, rid: int, budget: int, ids: list[int], toks: list[int], fits: bool = False
    ) -> bool:
        """`_admit_one` of a head whose prompt is a chain of prefix segments: its leading
        cached segments are hit (in whole pages), the rest and its own pages are taken
        (`fits`: it is known not to be `_blocked`)."""
        if not fits and self._blocked(rid, budget):
            self.refusal(rid, budget)
            return False
        cache = self.cache
        assert cache is not None
        bs = self.page
        seq = int(self.seq_len[rid])
        hit_tok, revived, fresh = cache.admission(rid, self.q_front)
        hit_pages, most = hit_tok // bs, (seq - 1) // bs  # a hit leaves one token to compute
        hit_tok = (hit_pages if hit_pages < most else most) * bs
        n = seq - hit_tok
        if n > budget and not self.config.chunked_prefill:
            return False
        kv_after = hit_tok + (n if n < budget else budget)
        if not self._take_chained(rid, hit_tok, kv_after, revived, fresh):
            return False
        self.waiting.popleft()
        ids.append(rid)
        toks.append(kv_after - hit_tok)
        return True


class SglangEngine(SglangAdmission):
    """SGLang scheduler: prefill batches first, token pool, reservation, retraction."""

    # run through `SglangLockstep` when noiseless (its rules are `_iterate`'s)
    lockstep: ClassVar[bool] = True

    def run(self) -> ReplicaResult:
        if self.lockstep and self.noise is None:
            return SglangLockstep(self, self, SGLANG_CLIP_MAX_NEW_TOK).run()
        return super().run()

    def _configure(self, config: ServingConfig, kv_tokens: int) -> None:
        super()._configure(config, kv_tokens)
        self.budget = config.max_num_batched_tokens
        self.max_prefill_batch = config.max_prefill_batch
        if config.max_prefill_tokens > 0:
            self.budget = min(self.budget, config.max_prefill_tokens)
        self.max_running_req = sim_policy(config.engine).running_limit(config, kv_tokens)
        self.init_ratio = min(SGLANG_INIT_RATIO * config.schedule_conservativeness, 1.0)
        self.min_ratio = min(self.init_ratio * SGLANG_MIN_RATIO_FACTOR, 1.0)
        self.decay = (self.init_ratio - self.min_ratio) / SGLANG_RATIO_DECAY_STEPS
        self.ratio = self.init_ratio
        self.partial = -1  # the request whose prefill is being chunked

    def _has_partial(self) -> bool:
        return self.partial >= 0

    def _reserved(self) -> float:
        r = self.running
        if r.size == 0:
            return 0.0
        left = np.minimum(self.out[r] - self.gen[r], SGLANG_CLIP_MAX_NEW_TOK)
        return float(left.sum()) * self.ratio

    def _iterate(self) -> bool:
        if self._prefill():
            return True
        r = self.running
        if r.size == 0:
            return False
        n = len(r)
        # a decode step takes a page for each request whose KV fills its pages
        need = ceil_div(self.kv_len[r] + 1, self.page) - self.blocks[r]
        if self.free < int(need.sum()):
            keep = n
            while self.free < int(need[:keep].sum()) and keep > 1:
                keep -= 1
                self._preempt(int(r[keep]))
            self.running = r = r[:keep]
            self.ratio = self.init_ratio
            n = keep
        if self._draining():
            k = self._drain_k()
            if k > 1:
                self._macro_drain(k)
                self.ratio = max(self.min_ratio, self.ratio - self.decay * k)
                return True
        k = self._decode_k()
        if k > 1:
            self._macro_decode(k)
        else:
            self._allocate(int(need[:n].sum()))
            self.blocks[r] += need[:n]
            self._execute(r, np.ones(n, dtype=np.int64))
        self.ratio = max(self.min_ratio, self.ratio - self.decay * k)
        return True

    def _head_admissible_after(self, ks: IntArray) -> BoolArray:
        """Boolean per candidate step count j: could the waiting head be admitted after j
        more decode steps (reservation check only)?"""
        r = self.running
        n = len(r)
        rid = self.waiting[0]
        left = float(np.minimum(self.out[r] - self.gen[r], SGLANG_CLIP_MAX_NEW_TOK).sum())
        ratio = np.maximum(self.min_ratio, self.ratio - self.decay * ks)
        kv0 = self.kv_len[r]
        free = self.free - (pages_after(kv0, ks, self.page) - int(self.blocks[r].sum()))
        reserved = (left - n * ks) * ratio
        seq = int(self.seq_len[rid])
        head = (
            float(seq)
            + np.minimum(float(self.out[rid] - self.gen[rid]), SGLANG_CLIP_MAX_NEW_TOK) * ratio
        )
        ok: BoolArray = (free * self.page - reserved >= head) & (free >= -(-seq // self.page))
        return ok

    def _decode_k(self) -> int:
        r = self.running
        n = len(r)
        k_hi = min(int((self.out[r] - self.gen[r]).min()), MACRO_MAX_STEPS)
        held = int(self.blocks[r].sum())
        k = decode_pages_k(self.kv_len[r], held, self.free, k_hi, self.page)
        if k <= 1:
            return 1
        if not self.waiting:
            return self._macro_len(k, self._next_entry_bound_s())
        if n >= self.max_running_req:
            return k
        ks = np.arange(1, k + 1, dtype=np.int64)
        ok = self._head_admissible_after(ks)
        if ok.any():
            k = int(ks[int(np.argmax(ok))])
        return max(1, k)

    def _prefill(self) -> bool:
        ids, toks = self._prefill_batch(len(self.running), self._reserved)
        if not ids:
            return False
        arr = np.array(ids, dtype=np.int64)
        tok = np.array(toks, dtype=np.int64)
        done = self.kv_len[arr] + tok >= self.seq_len[arr]
        joined = arr[done]
        if joined.size:
            self.running = np.concatenate([self.running, joined])
        self._execute(arr, tok)
        return True


class TrtllmEngine(VllmEngine):
    """TensorRT-LLM in-flight batching: generation requests first, then context requests within
    max_num_tokens and max_batch_size; the capacity scheduler decides admission.

    GUARANTEED_NO_EVICT admits a request only if the blocks for its whole prompt + max_tokens
    fit next to what every running request has reserved, so decode never runs out of blocks
    and nothing is preempted. MAX_UTILIZATION allocates on demand and pauses (evicts) the newest
    request when blocks run out, as vLLM does. Without chunked prefill a context must fit in
    one step's token budget; longer prompts are rejected.
    """

    def _configure(self, config: ServingConfig, kv_tokens: int) -> None:
        super()._configure(config, kv_tokens)
        self.no_evict = config.capacity_policy == "guaranteed_no_evict"
        self.reserves_output = self.no_evict
        self.reserve = ceil_div(self.prompt + self.out, self.page)
        self.reserved = 0
        if not config.chunked_prefill:
            self.prompt_limit = min(self.prompt_limit, self.budget)

    def _admit(
        self, budget: int, n_running: int, ids: list[int], toks: list[int], fits: bool = False
    ) -> None:
        if not self.no_evict:
            super()._admit(budget, n_running, ids, toks, fits)
            return
        while self.waiting and budget > 0 and n_running + len(ids) < self.max_seqs:
            rid = self.waiting[0]
            if self.reserved + int(self.reserve[rid]) > self.total_blocks:
                break
            before = len(ids)
            self._admit_one(budget, ids, toks)
            if len(ids) == before:
                break
            self.reserved += int(self.reserve[rid])
            budget -= toks[-1]

    def _passing(self) -> bool:
        return not self.no_evict and super()._passing()  # a drain does not return reservations

    def _returned(self, rid: int) -> None:
        if self.no_evict:
            self.reserved -= int(self.reserve[rid])

    def _finish_done(self, finished: IntArray, d: float) -> None:
        if self.no_evict and finished.size:
            self.reserved -= int(self.reserve[finished].sum())
        super()._finish_done(finished, d)


class MindieEngine(SglangEngine):
    """MindIE (Ascend) continuous batching: when requests wait, a prefill batch of at most
    maxPrefillBatchSize requests and maxPrefillTokens tokens runs on its own (no chunking);
    otherwise a decode batch of up to maxBatchSize. KV blocks (128 tokens) are allocated on
    demand with no new-token reservation; when they run out, the newest request is recomputed
    later."""

    def _configure(self, config: ServingConfig, kv_tokens: int) -> None:
        super()._configure(config, kv_tokens)
        self.init_ratio = self.min_ratio = self.ratio = 0.0
        self.decay = 0.0
        self.max_running_req = max(1, config.max_num_seqs)
        if not config.chunked_prefill:
            self.prompt_limit = min(self.prompt_limit, max(self.budget, 1))


def run_replica(
    config: ServingConfig,
    requests: RequestSet,
    kv_tokens: int,
    model: StepModel,
    noise: Noise | None = None,
    noise_rng: np.random.Generator | None = None,
) -> ReplicaResult:
    """Simulate one engine instance serving `requests` with `kv_tokens` per engine core."""
    scheduler = SCHEDULERS[sim_policy(config.engine).scheduler]
    with acyclic():
        return scheduler(config, requests, kv_tokens, model, noise, noise_rng).run()


SCHEDULERS: dict[SchedulerKind, type[ReplicaEngine]] = {
    SchedulerKind.VLLM_V1: VllmEngine,
    SchedulerKind.SGLANG: SglangEngine,
    SchedulerKind.TRTLLM_CAPACITY: TrtllmEngine,
    SchedulerKind.MINDIE_PD: MindieEngine,
}

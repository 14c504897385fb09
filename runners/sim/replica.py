"""One simulated engine instance: the state and mechanics every scheduler model shares.

Place in the data flow: `scheduler.run_replica` builds one `ReplicaEngine` subclass (the
scheduler model the engine's simulator policy names) per replica. This base plays the benchmark
client and the API server (`frontend`), holds the paged KV pool (with LRU-retained blocks of
preempted requests, and the shared prefix segments of `prefix.PrefixCache`), executes steps
through the `perf.StepModel`, collapses decode-only stretches into macro-steps (also through
request finishes when nothing can enter any more), and turns the run into `RequestRecords`.
Subclasses decide what runs in each step (`_iterate`). Optional noise (`params.Noise`) scales
step times from its own random stream, so the workload and the noiseless path are unchanged.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from runners.bench.records import FloatArray, IntArray, RequestRecords
from runners.engines import sim_policy
from runners.sim.frontend import Ingestion, OutputStream, ingestion_work_s
from runners.sim.params import Noise
from runners.sim.perf import StepModel
from runners.sim.prefix import PrefixCache
from runners.types import ServingConfig
from runners.workload import RequestSet

MACRO_MAX_STEPS = 4096
MACRO_FIRST_STEPS = 32  # steps `_macro_len` prices before the whole run


@dataclass(frozen=True)
class ReplicaResult:
    """What one engine instance did with its share of the workload."""

    records: RequestRecords
    steps: int
    preemptions: int
    max_running: int


def ceil_div(a: IntArray, b: int) -> IntArray:
    """ceil(a / b) for b > 0, in two NumPy calls (equal to -(-a // b) for every integer a)."""
    return (a + (b - 1)) // b


class ReplicaEngine:
    """State and mechanics shared by both scheduler policies; subclasses implement `_iterate`."""

    def __init__(
        self,
        config: ServingConfig,
        requests: RequestSet,
        kv_tokens: int,
        model: StepModel,
        noise: Noise | None = None,
        noise_rng: np.random.Generator | None = None,
    ) -> None:
        n = requests.size
        self.config = config
        costs = model.calib.host_costs(config.engine, config.gpu)
        workers = config.tensor_parallel * config.pipeline_parallel
        self.c_in_s = costs.c_in_s + costs.c_in_per_worker_s * (workers - 1)
        self.latency_s = costs.latency_s
        self.noise = noise if noise is not None and noise.enabled else None
        self.noise_rng = noise_rng or np.random.default_rng(0)
        self.run_factor = 1.0
        if self.noise is not None:
            self.run_factor = float(
                np.exp(self.noise.run_sigma * self.noise_rng.standard_normal())
            )
        self.model = model
        self.n = n
        self.prompt = requests.prompt_len.astype(np.int64)
        self.out = requests.output_len.astype(np.int64)
        self.send_s = np.zeros(n, dtype=np.float64)
        self.first_s = np.full(n, np.nan)
        self.last_s = np.zeros(n, dtype=np.float64)
        self.done_s = np.zeros(n, dtype=np.float64)
        self.success = np.zeros(n, dtype=np.bool_)
        self.seq_len = self.prompt.copy()
        self.kv_len = np.zeros(n, dtype=np.int64)
        self.gen = np.zeros(n, dtype=np.int64)
        self.blocks = np.zeros(n, dtype=np.int64)
        self.cache_blocks = np.zeros(n, dtype=np.int64)
        self.cache_base = np.zeros(n, dtype=np.int64)
        self.cache_total = np.zeros(n, dtype=np.int64)
        self.dp = model.dp
        policy = sim_policy(config.engine)
        self.page = policy.page_tokens(config)
        self.total_blocks = (kv_tokens * self.dp) // self.page
        self.capacity_tok = self.total_blocks * self.page
        self.free = self.total_blocks
        self.q_front = 0
        self.q_tail = self.total_blocks
        self.running = np.zeros(0, dtype=np.int64)
        self.waiting: deque[int] = deque()
        self.itl: list[FloatArray] = []
        self.steps = 0
        self.preemptions = 0
        self.max_running = 0
        self.now = 0.0
        self._run_memo: tuple[int, float, FloatArray] | None = None
        self._drain_memo: tuple[IntArray, int, IntArray, FloatArray] | None = None
        speedup = float(max(self.dp, config.api_server_count))
        self.ingest = Ingestion(speedup)
        self.stream = OutputStream(speedup, costs.c_out_s)
        self.entries: deque[tuple[float, int]] = deque()
        self.sends: list[tuple[float, int]] = []
        self.intended_s = requests.send_s.astype(np.float64)
        self.prefix_caching = config.prefix_caching
        # Multi-turn: a child is sent by its parent; roots are sent by the client loop.
        self.child = np.full(n, -1, dtype=np.int64)
        self.is_root = np.ones(n, dtype=np.bool_)
        if requests.parent is not None:
            has = requests.parent >= 0
            self.child[requests.parent[has]] = np.nonzero(has)[0]
            self.is_root = ~has
        self.roots = np.nonzero(self.is_root)[0]
        self.cache: PrefixCache | None = None
        if self.prefix_caching and requests.chains is not None:
            self.cache = PrefixCache(requests.chains, self.page)
        self.prompt_limit = min(config.max_model_len, self.capacity_tok)
        self.slots = requests.max_concurrency if requests.max_concurrency else n
        self.next_client = 0
        for _ in range(min(self.slots, len(self.roots))):
            self._client_send(0.0)
        self._configure(config, kv_tokens)

    def _configure(self, config: ServingConfig, kv_tokens: int) -> None:
        """A policy's own settings, read once the shared state exists (subclasses extend it)."""

    # --- client and frontend ---------------------------------------------------------------
    def _client_send(self, free_at_s: float) -> None:
        if self.next_client >= len(self.roots):
            return
        rid = int(self.roots[self.next_client])
        self.next_client += 1
        self._send(rid, free_at_s)

    def _send(self, rid: int, free_at_s: float) -> None:
        t = max(float(self.intended_s[rid]), free_at_s)
        self.send_s[rid] = t
        heapq.heappush(self.sends, (t, rid))

    def _next_turn(self, rid: int, t: float) -> None:
        """The client's slot passes to the next turn of the conversation, or to a new one."""
        child = int(self.child[rid])
        if child >= 0:
            self._send(child, t)
        else:
            self._client_send(t)

    def _absorb_arrivals(self) -> None:
        done: list[tuple[float, int]] = []
        while self.sends and self.sends[0][0] <= self.now:
            t, rid = heapq.heappop(self.sends)
            self.ingest.add(t, ingestion_work_s(int(self.prompt[rid]), self.c_in_s), rid, done)
        self.ingest.advance(self.now, done)
        for t_done, rid in done:
            self.entries.append((t_done + self.latency_s, rid))
        while self.entries and self.entries[0][0] <= self.now:
            t_entry, rid = self.entries.popleft()
            if self.prompt[rid] + self.out[rid] > self.prompt_limit:
                self._fail(rid, t_entry)
            else:
                self.waiting.append(rid)

    def _fail(self, rid: int, t: float) -> None:
        """A rejected request; later turns of its conversation fail with it."""
        while True:
            self.done_s[rid] = t
            self.success[rid] = False
            child = int(self.child[rid])
            if child < 0:
                break
            rid = child
        self._client_send(t)

    def _next_event_s(self) -> float:
        t = self.ingest.next_completion_s()
        if self.sends:
            t = min(t, self.sends[0][0])
        if self.entries:
            t = min(t, self.entries[0][0])
        return t

    def _next_entry_bound_s(self) -> float:
        """Earliest time a request not yet waiting could enter the engine."""
        t = self.ingest.next_completion_s() + self.latency_s
        if self.sends:
            t = min(t, self.sends[0][0] + self.latency_s)
        if self.entries:
            t = min(t, self.entries[0][0])
        return t

    # --- KV pool ---------------------------------------------------------------------------
    def _allocate(self, count: int) -> None:
        self.free -= count
        self.q_front = min(self.q_front + count, self.q_tail)

    def _release(self, rid: int, cache: bool) -> None:
        b = int(self.blocks[rid])
        if self.cache is not None and self.cache.held[rid]:
            own = b - int(self.cache.chain_pages[rid])
            b = own + self.cache.release(rid, own, self.q_tail)
        elif cache and self.prefix_caching:
            self.cache_base[rid] = self.q_tail
            self.cache_total[rid] = b
            self.cache_blocks[rid] = int(self.kv_len[rid]) // self.page
        self.q_tail += b
        self.free += b
        self.blocks[rid] = 0

    def _cached_hit_blocks(self, rid: int) -> int:
        """Leading full blocks already cached: the request's shared prefix segments, or its own
        blocks from before a preemption while still in the LRU free queue."""
        if not self.prefix_caching:
            return 0
        if self.cache is not None and self.cache.has_chain(rid):
            hit = self.cache.hit_tokens(rid, self.q_front) // self.page
        else:
            full = int(self.cache_blocks[rid])
            alive = int(self.cache_base[rid]) + int(self.cache_total[rid]) - self.q_front
            hit = max(0, min(alive, full))
        return min(hit, (int(self.seq_len[rid]) - 1) // self.page)

    def _chained(self, rid: int) -> bool:
        """Whether `rid`'s admission goes through the prefix cache's segments."""
        return self.cache is not None and self.cache.has_chain(rid)

    def _admission_pages(self, rid: int, kv_after: int) -> tuple[int, int]:
        """(pages revived from the free queue, pages allocated) to admit chained request `rid`
        computing up to `kv_after` tokens: its uncached segments and its own pages beyond its
        chain."""
        assert self.cache is not None
        revived, fresh = self.cache.charge(rid, self.q_front)
        own = max(0, -(-kv_after // self.page) - int(self.cache.chain_pages[rid]))
        return revived, fresh + own

    def _admit_chained(
        self, rid: int, hit_tok: int, kv_after: int, pages: tuple[int, int]
    ) -> None:
        """Take the `pages` of `_admission_pages` and hold the chain's segments."""
        assert self.cache is not None
        revived, allocated = pages
        self.cache.hold(rid, self.q_front)
        self.free -= revived
        self._allocate(allocated)
        self.kv_len[rid] = hit_tok
        self.blocks[rid] = max(int(self.cache.chain_pages[rid]), -(-kv_after // self.page))

    def _first_tokens(self, ids: IntArray) -> None:
        """Requests that produced their first token have computed their prompt's segments."""
        if self.cache is not None and ids.size:
            self.cache.computed(ids)

    def _preempt(self, rid: int) -> None:
        self._release(rid, cache=True)
        self.kv_len[rid] = 0
        self.waiting.appendleft(rid)
        self.preemptions += 1

    # --- executing steps -------------------------------------------------------------------
    def _execute(self, ids: IntArray, tok: IntArray) -> None:
        """Run one forward over `ids` computing `tok` new tokens each (blocks already held)."""
        kv0 = self.kv_len[ids]
        kv1 = kv0 + tok
        done = kv1 == self.seq_len[ids]  # the prompt is computed: the step samples a token
        n = len(ids)
        tokens = int(tok.sum())
        n_done = int(np.count_nonzero(done))
        if tokens == n and n_done == n:
            flop_units = kv_toks = 0.0
            ctx_sum = float(kv1.sum())
            sampled = ids
        else:
            is_dec = done & (tok == 1)  # one token that completes the sequence: a decode
            pre = np.flatnonzero(~is_dec)
            c = tok[pre].astype(np.float64)
            p = kv0[pre].astype(np.float64)
            flop_units = float(np.dot(c, p + (c + 1.0) * 0.5))
            kv_toks = float(c.sum() + p.sum())
            ctx_sum = float(kv1[is_dec].sum())
            sampled = ids[done] if n_done < n else ids
        self.kv_len[ids] = kv1
        dt = self.model.step_s(tokens, len(ids), len(sampled), ctx_sum, flop_units, kv_toks)
        if self.noise is not None:
            dt = float(self._jitter(np.array([dt]))[0])
        self.now += dt
        self.steps += 1
        if sampled.size:
            d = self.stream.deliver(self.now, len(sampled))
            self._emit(sampled, d)

    def _emit(self, sampled: IntArray, d: float) -> None:
        gen = self.gen[sampled]
        had = gen > 0
        n_had = int(np.count_nonzero(had))
        if n_had == len(sampled):
            self.itl.append(d - self.last_s[sampled])
        else:
            if n_had:
                self.itl.append(d - self.last_s[sampled[had]])
            firsts = sampled[~had]
            self.first_s[firsts] = d
            self._first_tokens(firsts)
        self.last_s[sampled] = d
        gen += 1
        self.gen[sampled] = gen
        self.seq_len[sampled] += 1
        self._finish_done(sampled[gen >= self.out[sampled]], d)

    def _finish_done(self, finished: IntArray, d: float) -> None:
        if finished.size == 0:
            return
        for rid in finished.tolist():
            self._release(rid, cache=self.child[rid] >= 0)
            self.done_s[rid] = d
            self.success[rid] = True
            self._next_turn(rid, d)
        r = self.running
        self.running = r[~self.success[r]]

    def _macro_decode(self, k: int) -> None:
        """k decode-only steps of the whole running set (blocks for step 1 already held)."""
        ids = self.running
        n = len(ids)
        kv0 = self.kv_len[ids]
        times = self._decode_run_s(n, float(kv0.sum() + n), k)
        if self.noise is not None:
            times = self._jitter(times)
        ends = self.now + np.cumsum(times)
        d = self.stream.deliver_run(ends, n)
        kv1 = kv0 + k
        held = ceil_div(kv1, self.page)
        self._allocate(int(held.sum()) - int(self.blocks[ids].sum()))
        self.blocks[ids] = held
        self.kv_len[ids] = kv1
        gen0 = self.gen[ids]
        if int(gen0.min()) > 0:
            self.itl.append(d[0] - self.last_s[ids])
        else:
            had = gen0 > 0
            self.itl.append(d[0] - self.last_s[ids[had]])
            self.first_s[ids[~had]] = d[0]
            self._first_tokens(ids[~had])
        if k > 1:
            gaps = d[1:] - d[:-1]
            self.itl.append(np.repeat(gaps[np.newaxis, :], n, axis=0).ravel())
        self.last_s[ids] = d[-1]
        gen = gen0 + k
        self.gen[ids] = gen
        self.seq_len[ids] += k
        self.now = float(ends[-1])
        self.steps += k
        self._finish_done(ids[gen >= self.out[ids]], float(d[-1]))

    def _jitter(self, times: FloatArray) -> FloatArray:
        """Noise on step times: run factor x per-step lognormal jitter + rare stalls."""
        noise = self.noise
        assert noise is not None
        rng = self.noise_rng
        out = times * self.run_factor
        if noise.step_sigma > 0:
            out = out * np.exp(noise.step_sigma * rng.standard_normal(len(times)))
        if noise.stall_prob > 0:
            out = out + (rng.random(len(times)) < noise.stall_prob) * noise.stall_s
        return np.asarray(out, dtype=np.float64)

    # --- drain: decode-only stretches through request finishes -----------------------------
    def _draining(self) -> bool:
        """Nothing can enter the engine any more and a finish triggers no new send, so the
        running set only shrinks: decode runs straight through finishes."""
        return (
            not self.waiting
            and not self.sends
            and not self.entries
            and not self.ingest.busy
            and self.next_client >= len(self.roots)
            and not bool((self.child[self.running] >= 0).any())
            and not self._has_partial()
        )

    def _passing(self) -> bool:
        """Nothing waits, nothing is half prefilled, and a finish triggers no new send (every
        conversation has been sent, none has a later turn): a decode stretch may run through
        finishes up to the next arrival, as a drain does. Noise off only: the jitter's draws
        follow the stretches, so splitting them differently would change a noisy run."""
        return (
            self.noise is None
            and not self.waiting
            and not self._has_partial()
            and self.next_client >= len(self.roots)
            and not bool((self.child[self.running] >= 0).any())
        )

    def _pass_k(self, t_limit_s: float) -> int:
        """`_drain_k` capped, like `_macro_len`, at the first step that reaches `t_limit_s`."""
        k = self._drain_k()
        if k <= 1 or not math.isfinite(t_limit_s):
            return k
        rem = self.out[self.running] - self.gen[self.running]
        first = min(k, MACRO_FIRST_STEPS)
        _, _, n_j, times = self._drain_times(rem, first)
        ends = self.now + np.cumsum(times)
        if ends[-1] < t_limit_s and first < k:
            _, _, n_j, times = self._drain_times(rem, k)
            ends = self.now + np.cumsum(times)
        self._drain_memo = (self.running, self.steps, n_j, times)
        return min(k, int(np.searchsorted(ends, t_limit_s)) + 1)

    def _drain_k(self) -> int:
        """Steps until the last running request finishes, capped by free KV blocks."""
        ids = self.running
        rem = self.out[ids] - self.gen[ids]
        k_hi = min(int(rem.max()), MACRO_MAX_STEPS)
        kv0 = self.kv_len[ids]
        held = int(self.blocks[ids].sum())

        def fits(k: int) -> bool:
            need = int(ceil_div(kv0 + np.minimum(rem, k), self.page).sum()) - held
            return need <= self.free

        if fits(k_hi):
            return k_hi
        lo, hi = 1, k_hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _drain_times(
        self, rem: IntArray, k: int
    ) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
        """(decode steps each running request takes part in, the requests in finishing order,
        batch size per step, step times) of k decode-only steps through finishes."""
        steps = np.minimum(rem, k)
        order = np.sort(steps)
        j = np.arange(k, dtype=np.int64)
        first_active = np.searchsorted(order, j, side="right")
        n_j = len(rem) - first_active  # active at step j
        kv0 = self.kv_len[self.running].astype(np.float64) + 1.0
        # sum over requests active at step j of (kv0 + j): prefix sums over sorted finish steps
        by_steps = np.argsort(steps, kind="stable")
        kv_sorted = kv0[by_steps]
        tail = np.concatenate([np.cumsum(kv_sorted[::-1])[::-1], [0.0]])
        ctx_j = tail[first_active] + j * n_j
        return steps, by_steps, n_j, self.model.decode_steps_s(n_j, ctx_j)

    def _macro_drain(self, k: int) -> None:
        """k decode-only steps in which running requests finish one after another; per step
        the batch is the requests still running, vectorized over steps."""
        ids = self.running
        rem = self.out[ids] - self.gen[ids]
        memo = self._drain_memo
        if memo is not None and memo[0] is ids and memo[1] == self.steps and len(memo[2]) >= k:
            # `_pass_k` priced this stretch: per-step batches and times do not depend on k
            steps = np.minimum(rem, k)
            by_steps = np.argsort(steps, kind="stable")
            n_j, times = memo[2][:k], memo[3][:k]
        else:
            steps, by_steps, n_j, times = self._drain_times(rem, k)
        self._drain_memo = None
        if self.noise is not None:
            times = self._jitter(times)
        ends = self.now + np.cumsum(times)
        d = self.stream.deliver_steps(ends, n_j)
        gen0 = self.gen[ids]
        had = gen0 > 0
        self.itl.append(d[0] - self.last_s[ids[had]])
        if not had.all():
            fresh = ids[~had]
            self.first_s[fresh] = d[0]
            self._first_tokens(fresh)
        if k > 1:
            self.itl.append(np.repeat(d[1:] - d[:-1], n_j[1:]))
        last = d[steps - 1]
        self.last_s[ids] = last
        self.gen[ids] = gen0 + steps
        self.seq_len[ids] += steps
        kv1 = self.kv_len[ids] + steps
        held = ceil_div(kv1, self.page)
        self._allocate(int(held.sum()) - int(self.blocks[ids].sum()))
        self.blocks[ids] = held
        self.kv_len[ids] = kv1
        self.now = float(ends[-1])
        self.steps += k
        # release in the order the requests finish, as step by step (the free queue's order)
        finishing = by_steps[(steps == rem)[by_steps]]
        for rid, t in zip(ids[finishing].tolist(), last[finishing].tolist(), strict=True):
            self._release(rid, cache=False)
            self.done_s[rid] = t
            self.success[rid] = True
        self.running = ids[steps < rem]

    def _decode_blocks_k(self, ids: IntArray, k_hi: int) -> int:
        """Largest k <= k_hi whose decode steps 2..k fit in the free blocks (binary search)."""
        if len(ids) * (k_hi // self.page + 1) <= self.free:
            return k_hi
        kv0 = self.kv_len[ids]
        held = int(self.blocks[ids].sum())
        lo, hi = 1, k_hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if int(ceil_div(kv0 + mid, self.page).sum()) - held <= self.free:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _decode_run_s(self, n: int, ctx_sum: float, k: int) -> FloatArray:
        """`StepModel.decode_run_s`, remembered: step j's time depends on j alone, so the run
        `_macro_len` priced is the start of the run `_macro_decode` then takes."""
        memo = self._run_memo
        if memo is not None and memo[0] == n and memo[1] == ctx_sum and len(memo[2]) >= k:
            return memo[2][:k]
        times = self.model.decode_run_s(n, ctx_sum, k)
        self._run_memo = (n, ctx_sum, times)
        return times

    def _macro_len(self, k_limit: int, t_limit_s: float) -> int:
        """Cap k so the stretch ends at the first step that reaches `t_limit_s`."""
        if not math.isfinite(t_limit_s) or k_limit <= 1:
            return k_limit
        ids = self.running
        n = len(ids)
        ctx_sum = float(self.kv_len[ids].sum() + n)
        # price a short run first: step j's time does not depend on the run's length, and the
        # limit is usually a few steps away
        first = min(k_limit, MACRO_FIRST_STEPS)
        ends = self.now + np.cumsum(self._decode_run_s(n, ctx_sum, first))
        if ends[-1] < t_limit_s and first < k_limit:
            ends = self.now + np.cumsum(self._decode_run_s(n, ctx_sum, k_limit))
        return min(k_limit, int(np.searchsorted(ends, t_limit_s)) + 1)

    # --- main loop -------------------------------------------------------------------------
    def run(self) -> ReplicaResult:
        while True:
            self._absorb_arrivals()
            if self.running.size == 0 and not self.waiting and not self._has_partial():
                t = self._next_event_s()
                if not math.isfinite(t):
                    break
                self.now = max(self.now, t)
                continue
            progressed = self._iterate()
            self.max_running = max(self.max_running, int(self.running.size))
            if not progressed:
                t = self._next_event_s()
                if not math.isfinite(t):
                    for rid in list(self.waiting):
                        self._fail(rid, self.now)
                    self.waiting.clear()
                    break
                self.now = max(self.now, t)
        return ReplicaResult(self._records(), self.steps, self.preemptions, self.max_running)

    def _has_partial(self) -> bool:
        return False

    def _iterate(self) -> bool:
        raise NotImplementedError

    def _records(self) -> RequestRecords:
        ok = self.success
        ttft = np.where(ok, self.first_s - self.send_s, 0.0)
        e2el = np.where(ok, self.done_s - self.send_s, 0.0)
        end = float(self.done_s.max()) if self.n else 0.0
        start = float(self.send_s.min()) if self.n else 0.0
        itl = np.concatenate(self.itl) if self.itl else np.zeros(0, dtype=np.float64)
        return RequestRecords(
            prompt_len=self.prompt.copy(),
            output_len=np.where(ok, self.out, 0).astype(np.int64),
            success=ok.copy(),
            start_s=self.send_s.copy(),
            ttft_s=ttft,
            e2el_s=e2el,
            itl_s=itl,
            duration_s=max(0.0, end - start),
        )

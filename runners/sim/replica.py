"""One simulated engine instance: the state and mechanics every scheduler model shares.

Place in the data flow: `scheduler.run_replica` builds one `ReplicaEngine` subclass (the
scheduler model the engine's simulator policy names) per replica. This base plays the benchmark
client and the API server (`frontend`), holds the paged KV pool (with LRU-retained blocks of
preempted requests, and the shared prefix segments of `prefix.PrefixCache`), executes steps
through the `perf.StepModel`, and turns the run into `RequestRecords`; `stretch.StretchEngine`
adds the decode-only macro-steps. Subclasses decide what runs in each step (`_iterate`).
Optional noise (`params.Noise`) scales step times from its own random stream, so the workload
and the noiseless path are unchanged.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from runners.bench.records import FloatArray, IntArray, RequestRecords
from runners.engines import sim_policy
from runners.sim import params
from runners.sim.frontend import Ingestion, OutputStream
from runners.sim.params import Noise
from runners.sim.perf import StepModel
from runners.sim.prefix import PrefixCache
from runners.types import ServingConfig
from runners.workload import RequestSet


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
        self.itl_pooled: list[tuple[FloatArray, IntArray]] = []  # (gaps, count of each)
        self.steps = 0
        self.preemptions = 0
        self.max_running = 0
        self.now = 0.0
        speedup = float(max(self.dp, config.api_server_count))
        self.ingest = Ingestion(speedup)
        self.stream = OutputStream(speedup, costs.c_out_s)
        self.entries: deque[tuple[float, int]] = deque()
        self.sends: list[tuple[float, int]] = []
        self.intended_s = requests.send_s.astype(np.float64)
        # per request, as Python numbers for the arrival path (the same floats as
        # `ingestion_work_s` of each, NumPy's multiply and add being Python's)
        self.work_s: list[float] = (
            self.c_in_s + params.FRONTEND_C_IN_PER_TOK_S * self.prompt.astype(np.float64)
        ).tolist()
        self.need_tok: list[int] = (self.prompt + self.out).tolist()
        self.prefix_caching = config.prefix_caching
        # Multi-turn: a child is sent by its parent; roots are sent by the client loop.
        self.child = np.full(n, -1, dtype=np.int64)
        self.is_root = np.ones(n, dtype=np.bool_)
        if requests.parent is not None:
            has = requests.parent >= 0
            self.child[requests.parent[has]] = np.nonzero(has)[0]
            self.is_root = ~has
        self.roots = np.nonzero(self.is_root)[0]
        self.child_list: list[int] = self.child.tolist()  # the same, for the per-request path
        self.root_list: list[int] = self.roots.tolist()
        self.cache: PrefixCache | None = None
        if self.prefix_caching and requests.chains is not None:
            self.cache = PrefixCache(requests.chains, self.page)
        self.prompt_limit = min(config.max_model_len, self.capacity_tok)
        self.slots = requests.max_concurrency if requests.max_concurrency else n
        # the client's first sends, as `_client_send(0.0)` of each slot (in bulk: a trace
        # sends every request this way)
        first = self.roots[: min(self.slots, len(self.roots))]
        intended = self.intended_s[first]
        at = np.where(intended < 0.0, 0.0, intended)  # max(intended, 0.0)
        self.send_s[first] = at
        # they wait in (time, id) order (a trace's already are) and enter the send heap one at
        # a time, so its pops stay cheap; the heap always holds the next of them
        by_time = np.lexsort((first, at))
        self.bulk = list(zip(at[by_time].tolist(), first[by_time].tolist(), strict=True))
        self.bulk_next = 0
        self.bulk_rid = -1  # the one in the heap
        self._next_bulk()
        self.next_client = len(first)
        self._configure(config, kv_tokens)

    def _configure(self, config: ServingConfig, kv_tokens: int) -> None:
        """A policy's own settings, read once the shared state exists (subclasses extend it)."""

    # --- client and frontend ---------------------------------------------------------------
    def _client_send(self, free_at_s: float) -> None:
        if self.next_client >= len(self.root_list):
            return
        rid = self.root_list[self.next_client]
        self.next_client += 1
        self._send(rid, free_at_s)

    def _send(self, rid: int, free_at_s: float) -> None:
        t = max(float(self.intended_s[rid]), free_at_s)
        self.send_s[rid] = t
        heapq.heappush(self.sends, (t, rid))

    def _next_turn(self, rid: int, t: float) -> None:
        """The client's slot passes to the next turn of the conversation, or to a new one."""
        child = self.child_list[rid]
        if child >= 0:
            self._send(child, t)
        else:
            self._client_send(t)

    def _next_bulk(self) -> None:
        """The next of the client's first sends enters the send heap."""
        if self.bulk_next < len(self.bulk):
            item = self.bulk[self.bulk_next]
            self.bulk_next += 1
            heapq.heappush(self.sends, item)
            self.bulk_rid = item[1]
        else:
            self.bulk_rid = -1

    def _absorb_arrivals(self) -> None:
        now, sends, ingest, entries = self.now, self.sends, self.ingest, self.entries
        done: list[tuple[float, int]] = []
        if sends and sends[0][0] <= now:
            work_s, heappop, bulk = self.work_s, heapq.heappop, self.bulk
            while sends and sends[0][0] <= now:
                if sends[0][1] == self.bulk_rid and self.bulk_next < len(bulk):
                    # `_next_bulk` after the pop, as one heap operation (the sends are
                    # distinct (time, id) pairs, so they leave the heap in the same order)
                    item = bulk[self.bulk_next]
                    self.bulk_next += 1
                    t, rid = heapq.heapreplace(sends, item)
                    self.bulk_rid = item[1]
                else:
                    t, rid = heappop(sends)
                    if rid == self.bulk_rid:
                        self.bulk_rid = -1
                ingest.add(t, work_s[rid], rid, done)
        ingest.advance(now, done)
        if done:
            latency = self.latency_s
            for t_done, rid in done:
                entries.append((t_done + latency, rid))
        if entries and entries[0][0] <= now:
            need, limit, waiting = self.need_tok, self.prompt_limit, self.waiting
            while entries and entries[0][0] <= now:
                t_entry, rid = entries.popleft()
                if need[rid] > limit:
                    self._fail(rid, t_entry)
                else:
                    waiting.append(rid)

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

    def _release(self, rid: int, cache: bool, final: bool = True) -> None:
        """`rid`'s pages join the free queue: it finished (`final`) or is preempted."""
        b = int(self.blocks[rid])
        prefixes = self.cache
        if prefixes is not None and prefixes.held[rid]:
            own = b - prefixes.chain_pages[rid]
            b = own + prefixes.release(rid, own, self.q_tail, final)
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

    def _blocked(self, rid: int, budget: int) -> bool:
        """Whether chained request `rid` is known not to fit the free pages without walking
        its chain (`_least_pages`)."""
        return self._least_pages(rid, budget) > self.free

    def _least_pages(self, rid: int, budget: int) -> int:
        """The fewest pages chained request `rid` can take when admitted with `budget`, 0 when
        unknown: a queue head that did not fit is tried again after every finish, and until
        someone is admitted its chain's unheld pages (exact at its last look) only grow, while
        it computes at least min(prompt, budget) tokens (so at least that many own pages beyond
        its chain)."""
        cache = self.cache
        if cache is None:
            return 0
        floor = cache.unheld_floor(rid)
        if not floor:
            return 0
        kv_after = int(self.seq_len[rid])
        if budget < kv_after:
            kv_after = budget
        own = -(-kv_after // self.page) - cache.chain_pages[rid]
        return floor + (own if own > 0 else 0)

    def _admission_pages(self, rid: int, kv_after: int) -> tuple[int, int]:
        """(pages revived from the free queue, pages allocated) to admit chained request `rid`
        computing up to `kv_after` tokens: its uncached segments and its own pages beyond its
        chain."""
        assert self.cache is not None
        revived, fresh = self.cache.charge(rid, self.q_front)
        own = max(0, -(-kv_after // self.page) - int(self.cache.chain_pages[rid]))
        return revived, fresh + own

    def _take_chained(
        self, rid: int, hit_tok: int, kv_after: int, revived: int, fresh: int
    ) -> bool:
        """Admit chained request `rid`, computing up to `kv_after` tokens after its `hit_tok`
        cached ones, if the pages of its `PrefixCache.admission` (`revived` from the free
        queue, `fresh` for its uncached segments) and its own pages beyond its chain fit the
        free pages: hold its segments, take the pages, set its KV and blocks. Whether it did."""
        cache = self.cache
        assert cache is not None
        chain_pages = cache.chain_pages[rid]
        pages = -(-kv_after // self.page)
        own = pages - chain_pages if pages > chain_pages else 0
        free = self.free
        if revived + fresh + own > free:
            return False
        q_front = self.q_front
        cache.hold(rid, q_front)
        # `_allocate(fresh + own)` after the revived pages leave the free count, inlined
        self.free = free - revived - (fresh + own)
        q_front += fresh + own
        q_tail = self.q_tail
        self.q_front = q_front if q_front < q_tail else q_tail
        self.kv_len[rid] = hit_tok
        self.blocks[rid] = pages if pages > chain_pages else chain_pages
        return True

    def _first_tokens(self, ids: IntArray) -> None:
        """Requests that produced their first token have computed their prompt's segments."""
        if self.cache is not None and ids.size:
            self.cache.computed(ids)

    def _preempt(self, rid: int) -> None:
        self._release(rid, cache=True, final=False)
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
            self._release(rid, cache=self.child_list[rid] >= 0)
            self.done_s[rid] = d
            self.success[rid] = True
            self._next_turn(rid, d)
        r = self.running
        self.running = r[~self.success[r]]

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

    # --- main loop -------------------------------------------------------------------------
    def run(self) -> ReplicaResult:
        while True:
            self._absorb_arrivals()
            if self.running.size == 0 and not self.waiting and not self._has_partial():
                if not self._wait_for_event(stuck=False):
                    break
                continue
            progressed = self._iterate()
            self.max_running = max(self.max_running, int(self.running.size))
            if not progressed and not self._wait_for_event(stuck=True):
                break
        return ReplicaResult(self._records(), self.steps, self.preemptions, self.max_running)

    def _wait_for_event(self, stuck: bool) -> bool:
        """Nothing can run now: move the clock to the next send, entry or ingestion event.
        False when none will ever come; then requests still waiting fail if nothing can let
        them in any more (`stuck`: the loop made no progress with them)."""
        t = self._next_event_s()
        if not math.isfinite(t):
            if stuck:
                for rid in list(self.waiting):
                    self._fail(rid, self.now)
                self.waiting.clear()
            return False
        self.now = max(self.now, t)
        return True

    def _no_more_arrivals(self) -> bool:
        """Nothing waits, and no send, entry, ingestion or first send of a client is to come."""
        return (
            not self.waiting
            and not self.sends
            and not self.entries
            and not self.ingest.busy
            and self.next_client >= len(self.roots)
        )

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
        count = None
        if self.itl_pooled:
            count = np.concatenate(
                [np.ones(len(itl), dtype=np.int64), *(c for _, c in self.itl_pooled)]
            )
            itl = np.concatenate([itl, *(g for g, _ in self.itl_pooled)])
        return RequestRecords(
            prompt_len=self.prompt.copy(),
            output_len=np.where(ok, self.out, 0).astype(np.int64),
            success=ok.copy(),
            start_s=self.send_s.copy(),
            ttft_s=ttft,
            e2el_s=e2el,
            itl_s=itl,
            duration_s=max(0.0, end - start),
            itl_count=count,
        )

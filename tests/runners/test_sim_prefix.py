"""The simulator's prefix cache of segment chains: hits, sharing the pool, eviction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runners.engines import sim_policy
from runners.sim import _step_model, simulate, step_budget
from runners.sim.prefix import PrefixCache
from runners.sim.reference import reference_config
from runners.sim.scheduler import SCHEDULERS
from runners.types import ServingConfig, Workload
from runners.workload import ChainBuilder, PrefixChains, RequestSet, make_requests

ENGINES = {
    "vllm": {"engine_version": "0.33.0"},
    "sglang": {"engine_version": "0.5.9", "mem_fraction": 0.85},
    "trtllm": {"engine_version": "1.2.0", "block_size": 32, "mem_fraction": 0.9},
}

# sessions and prefix groups in a pool tight enough for preemptions
SESSIONS = Workload(
    "t", "random", 300, input_len=2000, output_len=300, request_rate=100.0,
    prefix_len=3000, prefix_groups=6, turns=4, seed=1,
)  # fmt: skip


def config(engine: str = "vllm", caching: bool = True) -> ServingConfig:
    fields: dict[str, object] = {"engine": engine, "prefix_caching": caching, **ENGINES[engine]}
    return dataclasses.replace(reference_config(), **fields)  # type: ignore[arg-type]


def shared_list(n: int, shared: int, own: int, output: int, gap_s: float) -> RequestSet:
    """`n` requests, each `shared` tokens of one common prefix (16-token blocks) + `own`."""
    builder = ChainBuilder()
    blocks = shared // 16
    chain = builder.extend_all([], list(range(blocks)), [16] * blocks)
    return RequestSet(
        request_id=np.arange(n, dtype=np.int64),
        prompt_len=np.full(n, shared + own, dtype=np.int64),
        output_len=np.full(n, output, dtype=np.int64),
        send_s=np.arange(n, dtype=np.float64) * gap_s,
        max_concurrency=None,
        chains=builder.finish([chain] * n),
    )


def replay(cfg: ServingConfig, requests: RequestSet, kv_tokens: int):  # type: ignore[no-untyped-def]
    model = _step_model(cfg, step_budget(cfg, kv_tokens))
    engine = SCHEDULERS[sim_policy(cfg.engine).scheduler](cfg, requests, kv_tokens, model)
    return engine, engine.run()


def test_segments_hit_while_held_or_cached_and_not_once_evicted() -> None:
    builder = ChainBuilder()
    a = builder.extend_all([], ["x", "y"], [32, 40])  # pages of 16: 2 and 3 (the 72nd token
    b = builder.extend_all([], ["x", "z"], [32, 8])  # is in a page that straddles the end)
    cache = PrefixCache(builder.finish([a, b]), page=16)
    # the shared "x" is tracked from the start; "y" and "z" are private tails, by pages
    assert (cache.pages, cache.tail_pages) == ([2], [2, 0])
    assert cache.hit_tokens(0, q_front=0) == 0  # nothing computed yet
    assert cache.charge(0, q_front=0) == (0, 4)  # both segments allocated anew
    cache.hold(0, q_front=0)
    cache.computed(np.array([0]))
    assert cache.hit_tokens(1, q_front=0) == 32  # "x" is held and computed; "z" is not
    assert cache.charge(1, q_front=0) == (0, 0)  # "x" is already counted, "z" has no page
    returned = cache.release(0, own_pages=5, q_tail=100)
    assert returned == 4
    # queue: own pages 100..104, then "y" (105..106), then "x" (107..108): "x" is evicted last
    # ("y", written out by the preemption, is numbered after "x")
    assert cache.pos == [107, 105]
    assert cache.hit_tokens(1, q_front=107) == 32
    assert cache.charge(1, q_front=107) == (2, 0)  # revived from the free queue
    assert cache.hit_tokens(1, q_front=108) == 0  # its first page is gone
    assert cache.charge(1, q_front=108) == (0, 2)


def test_a_replica_s_share_keeps_only_its_segments_and_behaves_the_same() -> None:
    """A replica's chains (`PrefixChains.take`) keep the trace's segment ids; its cache
    tracks only the shared heads' segments, and answers as a cache of the same chains
    numbered from 0 does."""
    builder = ChainBuilder()
    a = builder.extend_all([], ["x", "y"], [32, 40])
    b = builder.extend_all([], ["w"], [64])
    c = builder.extend_all([], ["x", "z"], [32, 48])
    share = builder.finish([a, b, c]).take(np.array([0, 2]))
    alone = ChainBuilder()
    same = alone.finish(
        [alone.extend_all([], ["x", "y"], [32, 40]), alone.extend_all([], ["x", "z"], [32, 48])]
    )
    assert share.segment_count == 4 and same.segment_count == 3
    compact, fresh = PrefixCache(share, page=16), PrefixCache(same, page=16)
    assert len(compact.ref) == len(fresh.ref) == 1  # "x"

    def history(cache: PrefixCache) -> list[object]:
        seen: list[object] = [cache.admission(0, 0)]
        cache.hold(0, 0)
        cache.computed_ids([0])
        seen += [cache.admission(1, 0), cache.release(0, 5, 100, final=True)]
        seen += [cache.admission(1, q) for q in (104, 105, 106, 107, 108)]
        cache.hold(1, 104)
        seen.append(cache.release(1, 3, 120))  # preempted: its tail is written out
        return seen + [cache.admission(1, q) for q in (120, 125, 126)] + [cache.pos]

    assert history(compact) == history(fresh)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_shared_prefix_is_computed_once_and_cuts_ttft(engine: str) -> None:
    requests = shared_list(40, shared=4096, own=64, output=8, gap_s=0.5)
    _, cached = replay(config(engine), requests, 200_000)
    _, cold = replay(config(engine, caching=False), requests, 200_000)
    ttft, cold_ttft = cached.records.ttft_s, cold.records.ttft_s
    assert ttft[1:].mean() < 0.7 * cold_ttft[1:].mean()  # (the rest is fixed overhead)
    assert ttft[0] == pytest.approx(cold_ttft[0], rel=0.05)  # the first one computes it


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_held_prefix_counts_once_in_the_pool(engine: str) -> None:
    """With the prefix shared, many more requests fit in the same KV pool at once."""
    requests = shared_list(60, shared=8192, own=64, output=400, gap_s=0.05)
    kv = 40_000
    shared_engine, shared = replay(config(engine), requests, kv)
    cold_engine, cold = replay(config(engine, caching=False), requests, kv)
    assert shared.max_running >= 3 * cold.max_running
    for engine_run in (shared_engine, cold_engine):
        assert engine_run.free == engine_run.total_blocks  # every page came back


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_the_pool_comes_back_whole_under_pressure(engine: str) -> None:
    """Sessions and prefix groups with preemptions: every page and every hold is returned."""
    engine_run, result = replay(config(engine), make_requests(SESSIONS), 40_000)
    assert result.records.success.all()
    assert engine_run.free == engine_run.total_blocks
    assert engine_run.cache is not None and sum(engine_run.cache.ref) == 0


def test_today_s_workloads_never_build_a_prefix_cache() -> None:
    """Without shared prefixes the old path runs, so today's studies are unchanged."""
    w = Workload("s", "sharegpt-like", 200)
    engine_run, _ = replay(config(), make_requests(w), 200_000)
    assert engine_run.cache is None
    assert simulate(config(), w).records is not None


def test_an_evicted_prefix_is_computed_again() -> None:
    """Unrelated long requests between two users of a prefix push it out of a small pool."""
    builder = ChainBuilder()
    prefix = builder.extend_all([], list(range(256)), [16] * 256)  # 4,096 tokens
    chains = [prefix] + [[] for _ in range(30)] + [prefix]
    n = len(chains)
    prompt = np.array([4160] + [6000] * 30 + [4160], dtype=np.int64)
    requests = RequestSet(
        np.arange(n, dtype=np.int64), prompt, np.full(n, 4, dtype=np.int64),
        np.arange(n, dtype=np.float64) * 2.0, None, chains=builder.finish(chains),
    )  # fmt: skip
    requests_near = RequestSet(
        requests.request_id, prompt, requests.output_len,
        np.array([0.0] + [1000.0] * 30 + [2.0]), None, chains=requests.chains,
    )  # fmt: skip
    _, far = replay(config(), requests, 20_000)
    _, near = replay(config(), requests_near, 20_000)
    assert near.records.ttft_s[-1] < 0.7 * near.records.ttft_s[0]  # still cached: a hit
    assert far.records.ttft_s[-1] == pytest.approx(far.records.ttft_s[0], rel=0.1)  # evicted


@pytest.mark.python_loops
def test_a_head_known_not_to_fit_would_not_have_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """`_blocked` skips a queue head's chain walk only when the full check rejects it too."""
    from runners.sim.replica import ReplicaEngine

    skipped: list[int] = []
    known = ReplicaEngine._blocked

    def checked(engine: ReplicaEngine, rid: int, budget: int) -> bool:
        blocked = known(engine, rid, budget)
        if blocked:
            hit = engine._cached_hit_blocks(rid) * engine.page
            kv_after = hit + min(int(engine.seq_len[rid]) - hit, budget)
            assert sum(engine._admission_pages(rid, kv_after)) > engine.free
            skipped.append(rid)
        return blocked

    monkeypatch.setattr(ReplicaEngine, "_blocked", checked)
    engine_run, result = replay(config(), make_requests(SESSIONS), 40_000)
    assert result.records.success.all() and engine_run.preemptions > 0
    assert skipped  # the pool was tight enough for heads to wait


@pytest.mark.python_loops
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_private_tails_kept_implicit_change_nothing(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain's private tail (segments no other chain has) is not walked until its request
    is preempted; the run is the one that walks every segment, preemptions included."""
    from runners.sim import prefix

    builder = ChainBuilder()
    chains = []
    for i in range(300):  # 6 groups' 40 blocks, then 60 blocks of the request's own
        keys = [(i % 6, b) for b in range(40)] + [(i, b) for b in range(40, 100)]
        chains.append(builder.extend_all([], keys, [16] * 100))
    n = len(chains)
    requests = RequestSet(
        np.arange(n, dtype=np.int64), np.full(n, 1700, dtype=np.int64),
        np.full(n, 300, dtype=np.int64), np.arange(n, dtype=np.float64) * 0.01, None,
        chains=builder.finish(chains),
    )  # fmt: skip
    assert requests.chains is not None
    assert sum(prefix._private_tails(requests.chains, 16)[1]) == n * 60
    lazy_engine, lazy = replay(config(engine), requests, 40_000)
    monkeypatch.setattr(
        prefix, "_private_tails",
        lambda chains, page: (chains.offsets[1:].tolist(), [0] * chains.size),
    )  # fmt: skip
    walked_engine, walked = replay(config(engine), requests, 40_000)
    assert lazy_engine.preemptions == walked_engine.preemptions > 0
    for name in ("ttft_s", "e2el_s", "start_s", "success"):
        assert np.array_equal(getattr(lazy.records, name), getattr(walked.records, name))
    assert lazy_engine.free == lazy_engine.total_blocks


@pytest.mark.python_loops
def test_an_sglang_head_refused_unwalked_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """SGLang refuses a chained queue head by its hit ceiling (no chain walk) only when the
    reservation check with its real hit refuses it too: the ceiling bounds every hit, and
    the run is the one without the shortcut."""
    ceilings: list[tuple[int, int]] = []
    known = PrefixCache.hit_ceiling

    def checked(cache: PrefixCache, rid: int) -> int:
        ceiling = known(cache, rid)
        ceilings.append((ceiling, rid))
        return ceiling

    requests = make_requests(SESSIONS)
    monkeypatch.setattr(PrefixCache, "hit_ceiling", checked)
    short_engine, short = replay(config("sglang"), requests, 40_000)
    # a ceiling no prompt reaches: refused unwalked only if all but its last token would not fit
    monkeypatch.setattr(PrefixCache, "hit_ceiling", lambda cache, rid: 1 << 40)
    walked_engine, walked = replay(config("sglang"), requests, 40_000)
    assert short.records.success.all()
    assert any(ceiling < requests.prompt_len[rid] for ceiling, rid in ceilings)
    assert short_engine.preemptions == walked_engine.preemptions
    assert short_engine.steps == walked_engine.steps
    for name in ("ttft_s", "e2el_s", "start_s", "success"):
        assert np.array_equal(getattr(short.records, name), getattr(walked.records, name))


@pytest.mark.python_loops
@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_segments_hit_at_admission_are_still_computed_at_the_first_token(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`computed_ids` skips the segments a request hit at admission (`lead`): they are
    computed when its first token comes, and the run is the one that walks every segment."""
    skipped: list[bool] = []
    computed = PrefixCache.computed_ids

    def checked(cache: PrefixCache, ids: list[int]) -> None:
        for rid in ids:
            chain = cache._head(rid)[: cache.lead[rid]]
            skipped.append(bool(chain))
            assert all(cache.ready[seg] for seg in chain)
        computed(cache, ids)

    def walk_all(cache: PrefixCache, ids: list[int]) -> None:
        cache.lead = [0] * len(cache.lead)
        computed(cache, ids)

    requests = make_requests(SESSIONS)
    monkeypatch.setattr(PrefixCache, "computed_ids", checked)
    skip_engine, skip = replay(config(engine), requests, 40_000)
    monkeypatch.setattr(PrefixCache, "computed_ids", walk_all)
    walk_engine, walk = replay(config(engine), requests, 40_000)
    assert any(skipped) and skip_engine.preemptions > 0
    assert (skip_engine.steps, skip_engine.preemptions) == (
        walk_engine.steps,
        walk_engine.preemptions,
    )
    for name in ("ttft_s", "e2el_s", "start_s", "success"):
        assert np.array_equal(getattr(skip.records, name), getattr(walk.records, name))


@pytest.mark.python_loops
def test_a_hit_never_exceeds_the_hit_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """`PrefixCache.hit_ceiling` bounds what the chain walk finds, whenever it is asked."""
    pairs: list[tuple[int, int]] = []
    look = PrefixCache._look  # every admission's walk goes through it

    def checked(
        cache: PrefixCache, rid: int, q_front: int
    ) -> tuple[list[int], int, int, int, int]:
        got = look(cache, rid, q_front)
        pairs.append((got[2], cache.hit_ceiling(rid)))
        return got

    monkeypatch.setattr(PrefixCache, "_look", checked)
    engine, _ = replay(config("sglang"), make_requests(SESSIONS), 40_000)
    assert any(hit > 0 for hit, _ in pairs) and engine.preemptions > 0
    assert all(hit <= ceiling for hit, ceiling in pairs)


def _walked(cache: PrefixCache, rid: int, q_front: int) -> tuple[int, int, int, int]:
    """(cached segments, their tokens, revived pages, fresh pages) of `rid`'s chain by a walk
    over every segment: cached while computed and held or still in the free queue."""
    chain = cache._head(rid)
    count = revived = 0
    for seg in chain:
        if not cache.ready[seg] or not (cache.ref[seg] or cache.pos[seg] >= q_front):
            break
        count += 1
        revived += 0 if cache.ref[seg] else cache.pages[seg]
    fresh = sum(cache.pages[seg] for seg in chain[count:] if not cache.ref[seg])
    fresh += cache.tail_pages[rid] if cache.lazy[rid] else 0
    return count, cache.end[chain[count - 1]] if count else 0, revived, fresh


@pytest.mark.python_loops
@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_a_look_finds_what_a_walk_over_every_segment_finds(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`PrefixCache._look` walks a chain's held segments, then its unheld ones only while
    they are cached, and sums the rest's pages from the chain's suffix sums (a chain's held
    segments lead it): at every look of a run with preemptions it finds the cached segments,
    hit tokens and pages of a walk over every segment."""
    looks: list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]] = []
    look = PrefixCache._look

    def checked(
        cache: PrefixCache, rid: int, q_front: int
    ) -> tuple[list[int], int, int, int, int]:
        got = look(cache, rid, q_front)
        looks.append((got[1:], _walked(cache, rid, q_front)))
        return got

    monkeypatch.setattr(PrefixCache, "_look", checked)
    engine_run, _ = replay(config(engine), make_requests(SESSIONS), 40_000)
    assert engine_run.preemptions > 0
    assert any(found[2] > 0 for found, _ in looks)  # revived pages
    assert any(found[0] > 0 and found[3] > 0 for found, _ in looks)  # a hit, then fresh pages
    assert all(found == walked for found, walked in looks)


def _tail_cases() -> list[object]:
    """Chains of sessions and prefix groups (heads only), and Mooncake-like block chains:
    group blocks then the request's own, some with no group and some with no own blocks."""
    w = Workload(
        "t", "random", 300, input_len=2000, output_len=30, request_rate=100.0,
        prefix_len=3000, prefix_groups=6, turns=4, seed=1,
    )  # fmt: skip
    builder = ChainBuilder()
    blocks = []
    for i in range(60):
        keys = [(i % 4, b) for b in range(i % 5)] + [(100 + i, b) for b in range(i % 3)]
        blocks.append(builder.extend_all([], keys, [16] * (len(keys) - 1) + [9] if keys else []))
    return [make_requests(w).chains, builder.finish(blocks)]


@pytest.mark.parametrize("page", [1, 16, 64])
def test_private_tails_are_the_segments_after_the_last_shared_one(page: int) -> None:
    """`_private_tails` (which sums a tail's pages from its ends) against a walk over every
    chain."""
    from runners.sim import prefix

    for chains in _tail_cases():
        assert isinstance(chains, PrefixChains)
        seen = np.bincount(chains.segments, minlength=chains.segment_count)
        head_end, tail_pages = prefix._private_tails(chains, page)
        for rid in range(chains.size):
            chain = chains.chain(rid).tolist()
            shared = [i for i, seg in enumerate(chain) if seen[seg] > 1]
            cut = shared[-1] + 1 if shared else 0
            assert head_end[rid] == int(chains.offsets[rid]) + cut
            own = chain[cut:]
            pages = sum(int(chains.end[s]) // page - int(chains.start[s]) // page for s in own)
            assert tail_pages[rid] == pages
        heads = [h > o for h, o in zip(head_end, chains.offsets.tolist(), strict=False)]
        assert any(heads)
    assert any(tail_pages)  # the block chains have tails

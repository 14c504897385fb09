"""The SGLang and MindIE models' lockstep loop (`runners.sim.lockstep_sglang`) gives the records
of their step-by-step loop (`SglangEngine._iterate` every iteration): on fixed and random cases,
with iterations handed to `_iterate` at random, and a planted error in its bookkeeping is
caught by the same comparison."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from runners.sim import SimResult, simulate
from runners.sim.lockstep_sglang import SglangLockstep
from runners.sim.reference import dense_config
from runners.sim.replica import ReplicaEngine
from runners.sim.scheduler import SglangEngine
from runners.types import ServingConfig, Workload
from tests.runners.lockstep_cases import (
    BURST,
    CLOSED,
    LONG,
    LONG_OUT,
    PREFIX,
    RATED,
    TURNS,
    assert_same,
    run_loop,
)

SHORT = Workload("short", "random", 300, 200, 300, request_rate=30.0, seed=8)
# outputs over the reservation's 4096-token clip, at a pace that keeps requests waiting
CLIPPED = Workload("clipped", "random", 120, 3000, 6000, request_rate=4.0, seed=9)


def sglang(**overrides: object) -> ServingConfig:
    return dense_config("sglang", **overrides)


def mindie(**overrides: object) -> ServingConfig:
    return dense_config("mindie", **overrides)


def run(config: ServingConfig, workload: Workload, lockstep: bool) -> SimResult:
    return run_loop(SglangEngine, config, workload, lockstep)


CASES = [
    (sglang(), RATED),
    (sglang(), BURST),
    (sglang(), LONG),
    (sglang(), PREFIX),
    (sglang(), TURNS),
    (sglang(), CLOSED),
    (sglang(), LONG_OUT),  # retraction
    (sglang(mem_fraction=0.5), LONG_OUT),
    (sglang(prefix_caching=False), PREFIX),
    (sglang(max_prefill_batch=2, schedule_conservativeness=0.3), RATED),
    (sglang(chunked_prefill=False, max_num_batched_tokens=4096), RATED),
    (sglang(max_num_seqs=8), BURST),
    (sglang(cuda_graphs=False, async_scheduling=False), RATED),
    (sglang(spec_method="eagle3", spec_tokens=3), RATED),
    (sglang(mem_fraction=0.5), CLIPPED),
    (mindie(), RATED),
    (mindie(), BURST),
    (mindie(), TURNS),
    (mindie(), SHORT),
    (mindie(max_num_seqs=16), CLOSED),
    (mindie(mem_fraction=0.5), LONG_OUT),
    (mindie(mem_fraction=0.2), SHORT),  # retraction at page crossings
]
IDS = ["rated", "burst", "chunked", "prefixes", "turns", "closed", "retracting",
       "retracting-small-kv", "prefixes-no-cache", "prefill-batch-conservative",
       "whole-prompts", "few-seqs", "eager-sync", "spec", "clipped", "mindie-rated",
       "mindie-burst", "mindie-turns", "mindie-short", "mindie-few-seqs",
       "mindie-small-kv", "mindie-small-kv-short"]  # fmt: skip


def counting_steps(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per iteration of the lockstep loop, whether it took the lockstep path."""
    steps: list[bool] = []
    original = SglangLockstep.step

    def counted(self: SglangLockstep) -> bool | None:
        handled = original(self)
        steps.append(handled is not None)
        return handled

    monkeypatch.setattr(SglangLockstep, "step", counted)
    return steps


@pytest.mark.parametrize(("config", "workload"), CASES, ids=IDS)
def test_lockstep_matches_step_by_step(config: ServingConfig, workload: Workload) -> None:
    fast = run(config, workload, lockstep=True)
    assert fast.records is not None and fast.records.success.any()
    assert_same(fast, run(config, workload, lockstep=False))


@pytest.mark.python_loops
@pytest.mark.parametrize(("config", "workload"), CASES, ids=IDS)
def test_most_iterations_take_the_lockstep_path(
    config: ServingConfig, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = counting_steps(monkeypatch)
    run(config, workload, lockstep=True)
    assert sum(steps) > len(steps) // 2


def test_the_retracting_cases_retract() -> None:
    assert run(sglang(), LONG_OUT, lockstep=True).preemptions > 0
    assert run(mindie(mem_fraction=0.5), LONG_OUT, lockstep=True).preemptions > 0
    assert run(mindie(mem_fraction=0.2), SHORT, lockstep=True).preemptions > 0


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_match(seed: int) -> None:
    """Random workloads and settings, SGLang and MindIE."""
    rng = np.random.default_rng(seed)
    engine = ("sglang", "mindie")[seed % 2]
    config = dense_config(
        engine,
        mem_fraction=float(rng.choice([0.5, 0.6, 0.9])),
        max_num_seqs=int(rng.choice([8, 64, 256])),
        max_num_batched_tokens=int(rng.choice([2048, 8192])),
        prefix_caching=bool(rng.integers(2)),
    )
    prompt = int(rng.integers(100, 1500 if engine == "mindie" else 6000))
    workload = Workload(
        f"random-{seed}", "random", int(rng.integers(100, 400)), prompt,
        int(rng.integers(20, 1500)), request_rate=float(rng.choice([5.0, 20.0, 100.0])),
        seed=seed, turns=int(rng.choice([1, 1, 3])),
        max_concurrency=int(rng.choice([0, 0, 16])),
    )  # fmt: skip
    assert_same(run(config, workload, lockstep=True), run(config, workload, lockstep=False))


@pytest.mark.python_loops
@pytest.mark.parametrize(
    ("config", "workload"),
    [(sglang(), RATED), (sglang(), TURNS), (sglang(), LONG_OUT), (mindie(), RATED)],
    ids=["rated", "turns", "retracting", "mindie"],
)
def test_handing_steps_to_iterate_changes_nothing(
    config: ServingConfig, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every third iteration goes through `_iterate` on the materialized arrays, the lazy state
    rebuilt after (as a drain does)."""
    calls: list[int] = []
    original = SglangLockstep.step

    def sometimes(self: SglangLockstep) -> bool | None:
        calls.append(1)
        return None if len(calls) % 3 == 0 else original(self)

    monkeypatch.setattr(SglangLockstep, "step", sometimes)
    assert_same(run(config, workload, lockstep=True), run(config, workload, lockstep=False))
    assert len(calls) > 30


@pytest.mark.python_loops
def test_a_planted_block_error_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """One block too few for a macro-step: the small pool then retracts differently."""
    original = SglangLockstep._blocks_sum
    monkeypatch.setattr(SglangLockstep, "_blocks_sum", lambda self: original(self) + 1)
    config = sglang(mem_fraction=0.5)
    with pytest.raises(AssertionError):
        assert_same(run(config, LONG_OUT, lockstep=True), run(config, LONG_OUT, lockstep=False))


@pytest.mark.python_loops
def test_a_planted_reservation_error_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reservation at the initial new-token ratio (its decay forgotten): admissions
    change."""
    monkeypatch.setattr(
        SglangLockstep, "_reserved", lambda self: float(self._left()) * self.eng.init_ratio
    )
    with pytest.raises(AssertionError):
        assert_same(
            run(sglang(), LONG_OUT, lockstep=True), run(sglang(), LONG_OUT, lockstep=False)
        )


@pytest.mark.python_loops
def test_a_planted_clip_error_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remaining outputs not clipped at 4096 in the reservation: admissions change."""
    original = SglangLockstep.__init__

    def unclipped(self: SglangLockstep, *args: Any) -> None:
        original(self, *args)
        self.clip = 1 << 40

    monkeypatch.setattr(SglangLockstep, "__init__", unclipped)
    config = sglang(mem_fraction=0.5)
    with pytest.raises(AssertionError):
        assert_same(run(config, CLIPPED, lockstep=True), run(config, CLIPPED, lockstep=False))


@pytest.mark.python_loops
def test_a_planted_itl_error_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first gap of requests that joined since the last decode step taken from the last
    decode step instead of their own first token."""

    def shared(self: SglangLockstep, d: float, n: int) -> None:
        self.gaps.append(d - self.d_last)
        self.counts.append(n)
        self.pending = {}
        self.n_pending = 0

    monkeypatch.setattr(SglangLockstep, "_first_gaps", shared)
    with pytest.raises(AssertionError):
        assert_same(run(sglang(), RATED, lockstep=True), run(sglang(), RATED, lockstep=False))


@pytest.mark.python_loops
def test_noise_keeps_the_step_by_step_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from runners.sim import Noise

    steps = counting_steps(monkeypatch)
    result = simulate(dataclasses.replace(sglang()), RATED, seed=7, noise=Noise.typical())
    assert result.records is not None and not steps


@pytest.mark.parametrize(
    ("config", "workload"),
    [(sglang(), LONG), (sglang(), PREFIX), (sglang(mem_fraction=0.5), LONG_OUT),
     (sglang(mem_fraction=0.5), CLIPPED)],
    ids=["chunked", "prefixes", "retracting-small-kv", "clipped"],
)  # fmt: skip
def test_pages_of_several_tokens_match(config: ServingConfig, workload: Workload) -> None:
    """SGLang with --page-size 16 (its default is 1): chunked prompts, shared prefixes,
    retraction and the clip take pages at page crossings alike in both loops (MindIE's
    128-token blocks use the same code, without chunking)."""
    plain = run(config, workload, lockstep=True)
    paged = dataclasses.replace(config, block_size=16)
    fast = run(paged, workload, lockstep=True)
    assert_same(fast, run(paged, workload, lockstep=False))
    if config.mem_fraction < 0.9:  # a small pool: the pages change what runs
        with pytest.raises(AssertionError):
            assert_same(fast, plain)


def passing_steps(
    page: int, n: int, k: int, frees: list[int], left: float, seq: float, head: float,
    ratio: float, decay: float, min_ratio: float,
) -> list[int]:  # fmt: skip
    """The steps j of 1..k whose reservation check the head passes, evaluated one by one as
    `SglangEngine._head_admissible_after` does (`frees[j - 1]`: free pages after step j)."""
    seq_pages = -(-int(seq) // page)
    passing = []
    for j in range(1, k + 1):
        r = max(min_ratio, ratio - decay * j)
        free_j = frees[j - 1]
        if free_j * page - (left - n * j) * r >= seq + head * r and free_j >= seq_pages:
            passing.append(j)
    return passing


def prover(page: int, ratio: float, decay: float, min_ratio: float) -> SglangLockstep:
    """An `SglangLockstep` holding only what `_never` reads."""
    lock = object.__new__(SglangLockstep)
    lock.page = page
    lock.pol = SimpleNamespace(ratio=ratio, decay=decay, min_ratio=min_ratio)  # type: ignore[assignment]
    return lock


@pytest.mark.python_loops
@pytest.mark.parametrize("page", [1, 16])
def test_a_proved_refusal_is_a_refusal_at_every_step(page: int) -> None:
    """`_never` (a decode stretch's head check without the scan) says no step can pass only
    when the step-by-step scan finds none, on random states and on states placed at a pass
    boundary, and it proves most refusals in 1-token pages."""
    rng = np.random.default_rng(17 + page)
    proved = refused = 0
    for case in range(3000):
        n = int(rng.integers(1, 80))
        k = int(rng.integers(2, 200))
        left = float(n * k + int(rng.integers(0, n * 4096 - n * k + 1)))
        head = float(rng.integers(0, 4097))
        seq = float(rng.integers(1, 40000))
        if page == 1:
            init = float(rng.choice([0.7, 0.21, 1.0]))
            ratio = float(rng.uniform(init * 0.14, init))
            decay, min_ratio = (init - init * 0.14) / 600, init * 0.14
        else:  # MindIE's blocks: no reservation
            ratio = decay = min_ratio = 0.0
        free_1 = int(seq // page) + int(rng.integers(0, 3000))
        if page == 1:
            frees = [free_1 + n - n * j for j in range(1, k + 1)]
        else:
            crossed = np.cumsum(rng.integers(0, 2, size=k) * rng.integers(0, n + 1, size=k))
            frees = (free_1 - (crossed - crossed[0])).tolist()
        if case % 3 == 0:  # shift the pool so that the best step passes by a hair or misses
            margins = [
                fj * page - (left - n * j) * max(min_ratio, ratio - decay * j)
                - (seq + head * max(min_ratio, ratio - decay * j))
                for j, fj in enumerate(frees, 1)
            ]  # fmt: skip
            shift = -int(np.floor(max(margins) / page)) + int(rng.integers(-1, 2))
            frees = [f + shift for f in frees]
        passing = passing_steps(page, n, k, frees, left, seq, head, ratio, decay, min_ratio)
        never = prover(page, ratio, decay, min_ratio)._never(n, k, frees[0], left, seq, head)
        assert not (never and passing), (case, passing)
        refused += not passing
        proved += never
    assert refused > 300 and proved > refused // 2


@pytest.mark.python_loops
@pytest.mark.parametrize("time_scale", [1.0, 0.1])
def test_a_mooncake_trace_with_heads_refused_before_their_batch_matches(
    time_scale: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Mooncake-format trace (long prompts sharing prefix chains, queued): the lockstep loop
    skips the batches its head is refused from, by the hit ceiling or by the pages its chain
    and prompt take (`ReplicaEngine._blocked`), and gives the step-by-step loop's records."""
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("make_traces", root / "scripts/make_traces.py")
    assert spec is not None and spec.loader is not None
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    path = make.write_mooncake(tmp_path / "m.jsonl", 300, 300 / 6.5, 0)
    workload = Workload("mooncake", "mooncake", 300, path=str(path), time_scale=time_scale)
    refusals: list[bool] = []
    pages: list[bool] = []
    refused, blocked = SglangLockstep._refused, ReplicaEngine._blocked

    def counted(self: SglangLockstep) -> bool:
        refusals.append(refused(self))
        return refusals[-1]

    def bound(self: ReplicaEngine, rid: int, budget: int) -> bool:
        pages.append(blocked(self, rid, budget))
        return pages[-1]

    monkeypatch.setattr(SglangLockstep, "_refused", counted)
    monkeypatch.setattr(ReplicaEngine, "_blocked", bound)
    fast = run(sglang(), workload, lockstep=True)
    assert sum(refusals) > 20 and sum(pages) > 10
    assert_same(fast, run(sglang(), workload, lockstep=False))

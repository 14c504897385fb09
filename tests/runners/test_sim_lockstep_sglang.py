"""The SGLang and MindIE models' lockstep loop (`runners.sim.lockstep_sglang`) gives the records
of their step-by-step loop (`SglangEngine._iterate` every iteration): on fixed and random cases,
with iterations handed to `_iterate` at random, and a planted error in its bookkeeping is
caught by the same comparison."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from runners.sim import SimResult, simulate
from runners.sim.lockstep_sglang import SglangLockstep
from runners.sim.reference import dense_config
from runners.sim.scheduler import SglangEngine
from runners.types import ServingConfig, Workload

RATED = Workload("rated", "sharegpt-like", 400, request_rate=12.0, seed=3)
BURST = Workload("burst", "sharegpt-like", 300, seed=5)
LONG = Workload("long", "random", 40, 20000, 64, request_rate=2.0, seed=2)  # chunked prefill
PREFIX = Workload("prefix", "random", 300, 2000, 200, request_rate=8.0, seed=1,
                  prefix_len=1500, prefix_groups=4)  # fmt: skip
TURNS = Workload("turns", "sharegpt-like", 200, request_rate=6.0, seed=4, turns=3)
CLOSED = Workload("closed", "sharegpt-like", 300, max_concurrency=24, seed=6)
LONG_OUT = Workload("long-out", "random", 300, 4000, 1000, request_rate=20.0)
SHORT = Workload("short", "random", 300, 200, 300, request_rate=30.0, seed=8)
# outputs over the reservation's 4096-token clip, at a pace that keeps requests waiting
CLIPPED = Workload("clipped", "random", 120, 3000, 6000, request_rate=4.0, seed=9)


def sglang(**overrides: object) -> ServingConfig:
    return dense_config("sglang", **overrides)


def mindie(**overrides: object) -> ServingConfig:
    return dense_config("mindie", **overrides)


def run(config: ServingConfig, workload: Workload, lockstep: bool) -> SimResult:
    previous = SglangEngine.lockstep
    SglangEngine.lockstep = lockstep
    try:
        result = simulate(config, workload, seed=7)
    finally:
        SglangEngine.lockstep = previous
    assert result.records is not None, result.crash
    return result


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
    (mindie(mem_fraction=0.5), SHORT),
]
IDS = ["rated", "burst", "chunked", "prefixes", "turns", "closed", "retracting",
       "retracting-small-kv", "prefixes-no-cache", "prefill-batch-conservative",
       "whole-prompts", "few-seqs", "eager-sync", "spec", "clipped", "mindie-rated",
       "mindie-burst", "mindie-turns", "mindie-short", "mindie-few-seqs",
       "mindie-small-kv"]  # fmt: skip


def assert_same(fast: SimResult, slow: SimResult) -> None:
    a, b = fast.records, slow.records
    assert a is not None and b is not None
    assert (fast.steps, fast.preemptions, fast.max_running) == (
        slow.steps,
        slow.preemptions,
        slow.max_running,
    )
    np.testing.assert_array_equal(a.success, b.success)
    np.testing.assert_array_equal(a.output_len, b.output_len)
    for name in ("start_s", "ttft_s", "e2el_s"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=0)
    assert len(a.itl_gaps()) == len(b.itl_gaps())
    np.testing.assert_allclose(np.sort(a.itl_gaps()), np.sort(b.itl_gaps()), rtol=1e-9, atol=1e-15)


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
def test_lockstep_matches_step_by_step(
    config: ServingConfig, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = counting_steps(monkeypatch)
    fast = run(config, workload, lockstep=True)
    assert sum(steps) > len(steps) // 2  # most iterations took the lockstep path
    assert fast.records is not None and fast.records.success.any()
    assert_same(fast, run(config, workload, lockstep=False))


def test_the_retracting_cases_retract() -> None:
    assert run(sglang(), LONG_OUT, lockstep=True).preemptions > 0
    assert run(mindie(mem_fraction=0.5), SHORT, lockstep=True).preemptions > 0


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


def test_a_planted_block_error_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """One block too few for a macro-step: the small pool then retracts differently."""
    original = SglangLockstep._blocks_sum
    monkeypatch.setattr(SglangLockstep, "_blocks_sum", lambda self: original(self) + 1)
    config = sglang(mem_fraction=0.5)
    with pytest.raises(AssertionError):
        assert_same(run(config, LONG_OUT, lockstep=True), run(config, LONG_OUT, lockstep=False))


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


def test_noise_keeps_the_step_by_step_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from runners.sim import Noise

    steps = counting_steps(monkeypatch)
    result = simulate(dataclasses.replace(sglang()), RATED, seed=7, noise=Noise.typical())
    assert result.records is not None and not steps

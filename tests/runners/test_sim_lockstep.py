"""The vLLM model's lockstep loop (`runners.sim.lockstep`) gives the records of its
step-by-step loop (`VllmEngine._iterate` every iteration), and prices decode steps as
`StepModel.decode_run_s` does."""

from __future__ import annotations

import dataclasses
import gc
import math
import weakref
from pathlib import Path

import numpy as np
import pytest

from runners.sim import SimResult
from runners.sim.lockstep import Lockstep
from runners.sim.perf import StepModel
from runners.sim.reference import dense_config, reference_config
from runners.sim.scheduler import VllmEngine
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
    mooncake_trace,
    run_loop,
)


def dense(**overrides: object) -> ServingConfig:
    """Qwen3-14B on one A100 at the reference's vLLM release: a small pool, so long outputs
    preempt."""
    engine = str(overrides.pop("engine", "vllm"))
    overrides.setdefault("engine_version", reference_config().engine_version)
    return dense_config(engine, **overrides)


def trtllm(policy: str, **overrides: object) -> ServingConfig:
    base = dense(engine="trtllm", engine_version="1.2.0rc1", block_size=32)
    return dataclasses.replace(base, capacity_policy=policy, **overrides)  # type: ignore[arg-type]


def run(config: ServingConfig, workload: Workload, lockstep: bool) -> SimResult:
    return run_loop(VllmEngine, config, workload, lockstep)


CASES = [
    (reference_config(), RATED),
    (reference_config(), BURST),
    (reference_config(), LONG),
    (reference_config(), PREFIX),
    (reference_config(), TURNS),
    (reference_config(), CLOSED),
    (dataclasses.replace(reference_config(), mem_fraction=0.8, max_model_len=32768), RATED),
    (dense(), LONG_OUT),
    (dense(cuda_graphs=False), RATED),
    (dense(spec_method="eagle3", spec_tokens=3), RATED),
    (dense(async_scheduling=False, max_num_batched_tokens=2048), BURST),
    (trtllm("guaranteed_no_evict"), LONG_OUT),
    (trtllm("guaranteed_no_evict", chunked_prefill=False), RATED),
    (trtllm("max_utilization"), LONG_OUT),
]
IDS = ["rated", "burst", "chunked", "prefixes", "turns", "closed", "small-kv",
       "preempting", "eager", "spec", "small-budget", "trtllm-no-evict", "trtllm-whole-prompts",
       "trtllm-max-utilization"]  # fmt: skip


@pytest.mark.parametrize(("config", "workload"), CASES, ids=IDS)
def test_lockstep_matches_step_by_step(config: ServingConfig, workload: Workload) -> None:
    assert_same(run(config, workload, lockstep=True), run(config, workload, lockstep=False))


@pytest.mark.python_loops
@pytest.mark.parametrize(("config", "workload"), CASES, ids=IDS)
def test_most_iterations_take_the_lockstep_path(
    config: ServingConfig, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[int] = []
    original = Lockstep.step

    def counted(self: Lockstep) -> bool | None:
        handled = original(self)
        steps.append(handled is not None)
        return handled

    monkeypatch.setattr(Lockstep, "step", counted)
    run(config, workload, lockstep=True)
    assert sum(steps) > len(steps) // 2


def test_the_preempting_case_preempts() -> None:
    assert run(dense(), LONG_OUT, lockstep=True).preemptions > 0


@pytest.mark.python_loops
@pytest.mark.parametrize(
    ("config", "workload"), [CASES[0], CASES[4], CASES[7]], ids=["rated", "turns", "preempting"]
)
def test_handing_steps_to_iterate_changes_nothing(
    config: ServingConfig, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every third iteration goes through `_iterate` on the materialized arrays (as one with
    more decoding requests than the token budget would), the lockstep state rebuilt after."""
    calls: list[int] = []
    original = Lockstep.step

    def sometimes(self: Lockstep) -> bool | None:
        calls.append(1)
        return None if len(calls) % 3 == 0 else original(self)

    monkeypatch.setattr(Lockstep, "step", sometimes)
    assert_same(run(config, workload, lockstep=True), run(config, workload, lockstep=False))
    assert len(calls) > 30


@pytest.mark.parametrize(
    "config",
    [reference_config(), dense(cuda_graphs=False), dense(spec_method="eagle3", spec_tokens=3),
     dense(async_scheduling=False)],
    ids=["graphs", "eager", "spec", "sync"],
)  # fmt: skip
def test_a_scalar_decode_step_is_the_vectorized_one(config: ServingConfig) -> None:
    model = StepModel(config, 16384)
    for n in (1, 3, 40, 300):
        ctx0 = 1000.0 * n
        run_s = model.decode_run_s(n, ctx0, 50)
        steps = [model.decode_step_s(n, ctx0 + n * float(j)) for j in range(50)]
        assert steps == run_s.tolist()
        ends = (2.5 + np.cumsum(run_s)).tolist()
        assert model.decode_ends(n, ctx0, 50, 2.5, math.inf) == ends
        # a stretch stops after the first step that reaches the limit
        assert model.decode_ends(n, ctx0, 50, 2.5, ends[20]) == ends[:21]
        assert model.decode_ends(n, ctx0, 50, 2.5, ends[20] - 1e-9) == ends[:21]


@pytest.mark.python_loops
@pytest.mark.parametrize(
    ("config", "workload"),
    [CASES[2], (dataclasses.replace(reference_config(), max_num_batched_tokens=1024), PREFIX)],
    ids=["chunked", "prefixes-small-budget"],
)
def test_chunk_steps_take_the_short_path_and_change_nothing(
    config: ServingConfig, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt chunked through with the budget the decoding requests leave takes
    `Lockstep._chunk`, whose steps are the general path's."""
    taken: list[bool] = []
    original = Lockstep._chunk

    def counted(self: Lockstep, rid: int, tok: int) -> bool:
        took = original(self, rid, tok)
        taken.append(took)
        return took

    monkeypatch.setattr(Lockstep, "_chunk", counted)
    fast = run(config, workload, lockstep=True)
    assert any(taken)
    assert_same(fast, run(config, workload, lockstep=False))


def spy_on_finishes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, for each finish that ends a decode segment of `Lockstep._decode_on` with
    requests waiting, whether the stretch went on with another segment."""
    outcomes: list[bool] = []
    pending: list[bool] = []  # such a finish, its outcome not known yet
    segment, decode_on = Lockstep._segment, Lockstep._decode_on

    def counted_segment(self: Lockstep, t_limit: float) -> bool:
        if pending:
            outcomes.append(pending.pop())
        finished = segment(self, t_limit)
        if finished and self.eng.waiting:
            pending.append(True)
        return finished

    def counted_decode_on(self: Lockstep, n_dec: int) -> bool | None:
        pending.clear()
        result = decode_on(self, n_dec)
        if pending:
            outcomes.append(not pending.pop())
        return result

    monkeypatch.setattr(Lockstep, "_segment", counted_segment)
    monkeypatch.setattr(Lockstep, "_decode_on", counted_decode_on)
    return outcomes


@pytest.mark.python_loops
@pytest.mark.parametrize("config", [reference_config(), dense()], ids=["reference", "small-kv"])
def test_a_stretch_decodes_on_past_a_queue_head_that_still_does_not_fit(
    config: ServingConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An overloaded Mooncake trace: after a finish the queue head's chain often still does
    not fit, and the stretch goes on (`Lockstep._decode_on`) as the step-by-step loop's
    next steps would."""
    outcomes = spy_on_finishes(monkeypatch)
    workload = mooncake_trace(tmp_path / "mooncake.jsonl")
    fast = run(config, workload, lockstep=True)
    assert any(outcomes) and not all(outcomes)  # went on past some finishes, admitted at others
    assert_same(fast, run(config, workload, lockstep=False))


@pytest.mark.python_loops
def test_a_stretch_past_a_blocked_head_keeps_a_closed_loop_s_sends_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """128 clients replaying a Mooncake trace whose longest prompts the engine rejects: a
    rejected request's client sends its next one at once, so the arrivals due at a finish
    are absorbed there even when the queue head still does not fit (else that send would
    follow the next finish's, and the clients would send other requests when)."""
    outcomes = spy_on_finishes(monkeypatch)
    config = dense(max_model_len=12288, mem_fraction=0.6)
    trace = mooncake_trace(tmp_path / "mooncake.jsonl")
    workload = dataclasses.replace(trace, max_concurrency=128)
    fast = run(config, workload, lockstep=True)
    assert fast.records is not None and not fast.records.success.all()  # some were rejected
    assert any(outcomes)
    assert_same(fast, run(config, workload, lockstep=False))


@pytest.mark.python_loops
def test_a_prompt_s_last_chunk_takes_the_one_request_path_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one running request outside the lockstep (its prompt's last chunk, then maybe
    admissions), the step goes through `Lockstep._one_part`, whose steps are the general
    path's."""
    taken: list[bool | None] = []
    original = Lockstep._one_part

    def counted(self: Lockstep, rid: int, n_dec: int) -> bool | None:
        took = original(self, rid, n_dec)
        taken.append(took)
        return took

    monkeypatch.setattr(Lockstep, "_one_part", counted)
    workload = mooncake_trace(tmp_path / "mooncake.jsonl")
    fast = run(reference_config(), workload, lockstep=True)
    assert taken.count(True) > 50
    assert_same(fast, run(reference_config(), workload, lockstep=False))


@pytest.mark.python_loops
def test_a_run_leaves_its_engine_to_reference_counting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the loop runs, `VllmEngine.refusal` points into it (`Lockstep.remember`); after
    the run nothing holds the engine in a cycle, so it is freed at once, without the cyclic
    collector (which, on a 100k Mooncake trace, spent 60 ms walking the engine's tuples)."""
    engines: list[weakref.ref[VllmEngine]] = []
    original = VllmEngine.run

    def tracked(self: VllmEngine) -> object:
        engines.append(weakref.ref(self))
        return original(self)

    monkeypatch.setattr(VllmEngine, "run", tracked)
    workload = mooncake_trace(tmp_path / "mooncake.jsonl")
    enabled = gc.isenabled()
    gc.disable()
    try:
        run(reference_config(), workload, lockstep=True)
        freed = [ref() is None for ref in engines]
    finally:
        if enabled:
            gc.enable()
    assert freed and all(freed)

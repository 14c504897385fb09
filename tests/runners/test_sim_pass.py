"""Decode stretches that run through request finishes up to the next arrival
(`StretchEngine._passing`) give the same records as stopping at every finish. The vLLM model
runs these tests on its step-by-step loop (`VllmEngine.lockstep` off), the one that has them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runners.bench.records import RequestRecords
from runners.sim import simulate
from runners.sim.reference import reference_config
from runners.sim.scheduler import VllmEngine
from runners.sim.stretch import StretchEngine
from runners.types import ServingConfig, Workload

RATED = Workload("rated", "sharegpt-like", 400, request_rate=12.0, seed=3)
PREFIX = Workload("prefix", "random", 300, 2000, 200, request_rate=8.0, seed=1,
                  prefix_len=1500, prefix_groups=4)  # fmt: skip


def run(config: ServingConfig, workload: Workload) -> tuple[RequestRecords, int]:
    result = simulate(config, workload, seed=7)
    assert result.records is not None, result.crash
    return result.records, result.steps


def assert_close(a: RequestRecords, b: RequestRecords) -> None:
    np.testing.assert_array_equal(a.success, b.success)
    np.testing.assert_array_equal(a.output_len, b.output_len)
    for name in ("start_s", "ttft_s", "e2el_s"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=0)
    np.testing.assert_allclose(np.sort(a.itl_gaps()), np.sort(b.itl_gaps()), rtol=1e-9, atol=1e-15)


@pytest.mark.python_loops
@pytest.mark.parametrize(
    ("config", "workload"),
    [
        (reference_config(), RATED),
        (reference_config(), PREFIX),
        (dataclasses.replace(reference_config(), mem_fraction=0.8, max_model_len=32768), RATED),
    ],
    ids=["open-loop", "shared-prefixes", "small-kv"],
)
def test_running_through_finishes_changes_nothing(
    config: ServingConfig, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(VllmEngine, "lockstep", False)
    calls: list[int] = []
    passing = StretchEngine._passing

    def counted(self: StretchEngine) -> bool:
        ok = passing(self)
        calls.append(int(ok))
        return ok

    monkeypatch.setattr(StretchEngine, "_passing", counted)
    through, steps = run(config, workload)
    assert sum(calls) > 0  # the path was taken
    monkeypatch.setattr(StretchEngine, "_passing", lambda self: False)
    stepwise, steps_stepwise = run(config, workload)
    assert steps == steps_stepwise
    assert_close(through, stepwise)

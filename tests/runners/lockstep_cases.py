"""Shared by the lockstep tests (`test_sim_lockstep.py`, `test_sim_lockstep_sglang.py`): the
workloads both compare the two loops on, running one engine model's simulation with its
lockstep loop on or off, and the comparison of the two results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from runners.sim import SimResult, simulate
from runners.sim.scheduler import SglangEngine, VllmEngine
from runners.types import ServingConfig, Workload

ROOT = Path(__file__).resolve().parents[2]
RATED = Workload("rated", "sharegpt-like", 400, request_rate=12.0, seed=3)
BURST = Workload("burst", "sharegpt-like", 300, seed=5)
LONG = Workload("long", "random", 40, 20000, 64, request_rate=2.0, seed=2)  # chunked prefill
PREFIX = Workload("prefix", "random", 300, 2000, 200, request_rate=8.0, seed=1,
                  prefix_len=1500, prefix_groups=4)  # fmt: skip
TURNS = Workload("turns", "sharegpt-like", 200, request_rate=6.0, seed=4, turns=3)
CLOSED = Workload("closed", "sharegpt-like", 300, max_concurrency=24, seed=6)
LONG_OUT = Workload("long-out", "random", 300, 4000, 1000, request_rate=20.0)


def run_loop(
    engine: type[VllmEngine] | type[SglangEngine],
    config: ServingConfig,
    workload: Workload,
    lockstep: bool,
) -> SimResult:
    """`simulate` with `engine`'s model (and the models deriving from it) on its lockstep loop
    or on the step-by-step one."""
    previous = engine.lockstep
    engine.lockstep = lockstep
    try:
        result = simulate(config, workload, seed=7)
    finally:
        engine.lockstep = previous
    assert result.records is not None, result.crash
    return result


def assert_same(fast: SimResult, slow: SimResult) -> None:
    """The two loops' results agree: counts exactly, times to last-bit float noise."""
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


def mooncake_trace(path: Path, n: int = 300, duration_s: float = 30.0) -> Workload:
    """A Mooncake-format trace written by scripts/make_traces.py: long prompts whose hash-id
    chains end in private tails, sent faster than one node serves them (its queue grows)."""
    spec = importlib.util.spec_from_file_location("make_traces", ROOT / "scripts/make_traces.py")
    assert spec is not None and spec.loader is not None
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    make.write_mooncake(path, n, duration_s, 0)
    return Workload("mooncake", "mooncake", n, path=str(path))

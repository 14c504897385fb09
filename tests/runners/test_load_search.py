"""Load searches: the same request list re-timed per load, the plan (up, down, bisect), and the
simulator's goodput search on one resolved configuration."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from runners.load_search import LoadPlan, measure_workloads, search_load
from runners.sim.runner import SimRunner
from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    Distribution,
    LoadSearch,
    Metrics,
    NodeGroup,
    Placement,
    SloLimit,
    TrialOutcome,
    Workload,
)
from runners.workload import at_load, at_rate, make_requests, mean_rate

SHAREGPT = Workload("chat", "sharegpt-like", 300, seed=4)


def same_requests(a: Workload, b: Workload) -> None:
    ra, rb = make_requests(a), make_requests(b)
    assert np.array_equal(ra.prompt_len, rb.prompt_len)
    assert np.array_equal(ra.output_len, rb.output_len)


def test_a_synthetic_list_at_another_rate_is_the_same_requests_retimed() -> None:
    at_ten, at_twenty = at_rate(SHAREGPT, 10.0), at_rate(SHAREGPT, 20.0)
    same_requests(SHAREGPT, at_ten)
    same_requests(SHAREGPT, at_twenty)
    ten, twenty = make_requests(at_ten).send_s, make_requests(at_twenty).send_s
    assert np.allclose(ten, 2 * twenty)  # the same gaps, half as long
    assert mean_rate(make_requests(at_ten)) == pytest.approx(10.0, rel=0.15)
    assert not make_requests(at_rate(at_ten, math.inf)).send_s.any()


def test_a_trace_keeps_its_pattern_scaled_to_the_new_mean_rate(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.exponential(0.5, 200)) * 1000
    rows = [
        {
            "timestamp": float(t),
            "input_length": 100 + i,
            "output_length": 10 + i % 7,
            "hash_ids": [i],
        }
        for i, t in enumerate(times)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    trace = Workload("trace", "mooncake", 200, path=str(path))
    original = make_requests(trace).send_s
    retimed = at_rate(trace, 8.0)
    same_requests(trace, retimed)
    sent = make_requests(retimed).send_s
    assert mean_rate(make_requests(retimed)) == pytest.approx(8.0)
    assert np.allclose(sent, original * (sent[-1] / original[-1]))
    assert not make_requests(at_rate(trace, math.inf)).send_s.any()


def test_a_concurrency_load_only_caps_the_client() -> None:
    capped = at_load(SHAREGPT, "max_concurrency", 16)
    assert capped == dataclasses.replace(SHAREGPT, max_concurrency=16)
    assert at_load(capped, "max_concurrency", math.inf).max_concurrency is None


def metrics_at(rate: float) -> Metrics:
    """A stand-in server: p99 TTFT grows with the rate, 1,000 ms at 10 req/s."""
    ttft = 100.0 * rate if math.isfinite(rate) else 1e6
    dist = Distribution(ttft / 2, ttft / 2, 1.0, ttft, ttft, ttft)
    served = min(rate, 40.0)
    return Metrics(100, 0, 100 / served, 10_000, 5_000, served, served * 50, served * 150, 8,
                   dist, dist, dist, dist)  # fmt: skip


def fake_measure(seen: list[Workload]) -> object:
    def measure(workload: Workload) -> TrialOutcome:
        seen.append(workload)
        return TrialOutcome("ok", metrics=metrics_at(workload.request_rate))

    return measure


TTFT_1S = SloLimit("p99_ttft_ms", max=1000.0)


def test_the_search_goes_up_then_bisects_to_the_knee_within_tolerance() -> None:
    seen: list[Workload] = []
    search = LoadSearch((TTFT_1S,), start=1.0, tolerance=0.05, max_probes=20)
    curve, outcome = search_load(SHAREGPT, search, fake_measure(seen), [])  # type: ignore[arg-type]
    assert curve is not None and curve.knee is not None
    loads = [p.load for p in curve.probes]
    assert loads[:6] == [math.inf, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert 10.0 / 1.05 <= curve.knee.load <= 10.0
    broke = min(p.load for p in curve.probes if not p.held)
    assert (broke - curve.knee.load) / curve.knee.load <= 0.05
    assert outcome.metrics == curve.knee.metrics
    assert all(w.load_search is None and not w.also for w in seen)


def test_a_start_that_breaks_goes_down_and_nothing_holding_reports_the_lowest() -> None:
    search = LoadSearch((TTFT_1S,), start=40.0, max_probes=20)
    curve, _ = search_load(SHAREGPT, search, fake_measure([]), [])  # type: ignore[arg-type]
    assert curve is not None and curve.knee is not None
    assert [p.load for p in curve.probes][:4] == [math.inf, 40.0, 20.0, 10.0]
    never = LoadSearch((SloLimit("p99_ttft_ms", max=0.0),), start=8.0, max_probes=5)
    curve, outcome = search_load(SHAREGPT, never, fake_measure([]), [])  # type: ignore[arg-type]
    assert curve is not None and curve.knee is None
    assert len(curve.probes) == 5
    assert outcome.metrics == curve.lowest.metrics and curve.lowest.load == 1.0


def test_the_default_start_is_an_eighth_of_the_unbounded_rate_and_concurrency_is_whole() -> None:
    search = LoadSearch((TTFT_1S,))
    plan = LoadPlan.after(search, metrics_at(32.0), 100)
    assert plan.next_load() == 4.0
    plan = LoadPlan.after(dataclasses.replace(search, knob="max_concurrency"), metrics_at(9), 50)
    loads = []
    load = plan.next_load()
    while load is not None:
        loads.append(load)
        plan.record(dataclasses.replace(_probe(load), broken=() if load <= 11 else ("x",)))
        load = plan.next_load()
    assert loads[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 12.0]
    assert all(float(int(x)) == x for x in loads) and max(x for x in loads if x <= 11) == 11.0


def _probe(load: float):  # type: ignore[no-untyped-def]
    from runners.types import LoadProbe

    return LoadProbe(load, metrics_at(load))


def test_a_probe_that_crashes_ends_the_trial_with_its_crash() -> None:
    crash = Crash(CrashClass.RUNTIME_OOM, "CUDA out of memory", "load")

    def measure(workload: Workload) -> TrialOutcome:
        if math.isfinite(workload.request_rate) and workload.request_rate > 3:
            return TrialOutcome("crashed", crash=crash)
        return TrialOutcome("ok", metrics=metrics_at(workload.request_rate))

    searched = dataclasses.replace(SHAREGPT, load_search=LoadSearch((TTFT_1S,), start=1.0))
    measured = measure_workloads(searched, measure)
    assert measured.outcome.crash == crash
    assert [w.metrics is not None for w in measured.calls] == [True, True, True, False]


H100 = Placement(NodeGroup("h100", "H100-SXM-80GB", 8), tuple(range(8)))
QWEN = Candidate.make("vllm", "0.33.0", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", {})


def test_the_simulators_knee_is_a_plain_run_of_the_list_retimed_to_its_load() -> None:
    runner = SimRunner()
    slos = (SloLimit("p99_ttft_ms", max=1500.0), SloLimit("p99_tpot_ms", max=25.0))
    searched = dataclasses.replace(SHAREGPT, load_search=LoadSearch(slos))
    outcome = runner.run(QWEN, searched, H100)
    assert outcome.status == "ok", outcome.crash
    [run] = outcome.workloads
    assert run.curve is not None and run.curve.knee is not None
    knee = run.curve.knee
    again = runner.run(QWEN, at_rate(SHAREGPT, knee.load), H100)
    assert again.metrics == knee.metrics == outcome.metrics
    assert all(slo.holds(knee.metrics) for slo in slos)
    # one launch for the whole search: the estimate adds only the benchmarks' durations
    plain = runner.run(QWEN, SHAREGPT, H100)
    seconds = dict(outcome.diagnostics)["trial_seconds"]
    launch = dict(plain.diagnostics)["trial_seconds"] - plain.metrics.duration_s  # type: ignore[union-attr]
    durations = sum(p.metrics.duration_s for p in run.curve.probes)
    assert seconds == pytest.approx(launch + durations)

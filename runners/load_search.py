"""Measuring a trial's workloads on one running configuration: several workloads, load searches.

Place in the data flow: a runner with a configuration up (SimRunner: the simulated engine;
LocalRunner: one engine start) hands `measure_workloads` the trial's `Workload` and a function
that measures one request list on it (`Measure`). The trial's own workload, then each of
`Workload.also`, is measured as it is or, with a `LoadSearch`, at the loads the search picks
(`LoadPlan`: the unbounded load first, then up or down by `growth`, then bisection), each load
being the same request list re-timed (`runners.workload.at_load`). The trial's outcome is the
first workload's (with a search: the measurement at the knee, or at the lowest load when no
load held every SLO), carrying one `WorkloadRun` per workload. A measurement that crashes ends
the trial with that crash: the configuration fails under a load its deployment would see.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from runners.types import (
    LoadCurve,
    LoadProbe,
    LoadSearch,
    Metrics,
    TrialOutcome,
    Workload,
    WorkloadRun,
)
from runners.workload import at_load

Measure = Callable[[Workload], TrialOutcome]
"""Measures one request list (no load search, no further workloads) on the running engine."""

RATE_CEILING = 2.0
"""A rate search never probes above this multiple of the unbounded probe's request rate."""
RATE_FLOOR = 1 / 1024
"""... nor below this fraction of it."""


@dataclass(frozen=True)
class Measured:
    """The trial's outcome, and every measurement made for it in order."""

    outcome: TrialOutcome
    calls: tuple[TrialOutcome, ...]


def measure_workloads(workload: Workload, measure: Measure) -> Measured:
    """Measure `workload` and its `also` workloads, each with its load search if it has one."""
    calls: list[TrialOutcome] = []
    runs: list[WorkloadRun] = []
    first: TrialOutcome | None = None
    for each in (workload, *workload.also):
        plain = each.alone()
        if each.load_search is None:
            outcome = measure(plain)
            calls.append(outcome)
            curve = None
        else:
            curve, outcome = search_load(plain, each.load_search, measure, calls)
        if outcome.status != "ok" or outcome.metrics is None:
            return Measured(outcome, tuple(calls))
        runs.append(WorkloadRun(each.name, outcome.metrics, curve))
        first = first or outcome
    assert first is not None
    if len(runs) == 1 and runs[0].curve is None:
        return Measured(first, tuple(calls))
    return Measured(dataclasses.replace(first, workloads=tuple(runs)), tuple(calls))


def search_load(
    workload: Workload, search: LoadSearch, measure: Measure, calls: list[TrialOutcome]
) -> tuple[LoadCurve | None, TrialOutcome]:
    """(the curve, the outcome at its knee or lowest load), or (None, a crashed outcome).
    Every measurement is appended to `calls`."""
    probes: list[LoadProbe] = []
    outcomes: dict[float, TrialOutcome] = {}
    plan: LoadPlan | None = None
    load: float | None = math.inf
    while load is not None and len(probes) < search.max_probes:
        outcome = measure(at_load(workload, search.knob, load))
        calls.append(outcome)
        if outcome.status != "ok" or outcome.metrics is None:
            return None, outcome
        probe = LoadProbe(load, outcome.metrics, broken_slos(search, outcome.metrics))
        probes.append(probe)
        outcomes[load] = outcome
        if plan is None:
            if probe.held:
                break  # every SLO holds even with the load unbounded
            plan = LoadPlan.after(search, probe.metrics, workload.num_prompts)
        else:
            plan.record(probe)
        load = plan.next_load()
    curve = LoadCurve(search.knob, tuple(probes))
    chosen = curve.knee or curve.lowest
    return curve, outcomes[chosen.load]


def broken_slos(search: LoadSearch, metrics: Metrics) -> tuple[str, ...]:
    return tuple(slo.name for slo in search.slos if not slo.holds(metrics))


@dataclass
class LoadPlan:
    """Which load to probe next: up from `start` by `growth` while every SLO holds, down while
    they break, then bisection between the highest load that held (`held`) and the lowest
    that broke (`broke`), within [`floor`, `ceiling`]. Concurrency loads are whole numbers."""

    search: LoadSearch
    start: float
    floor: float
    ceiling: float
    held: float | None = None
    broke: float | None = None
    last: float | None = None
    tried: set[float] = field(default_factory=set)

    @staticmethod
    def after(search: LoadSearch, unbounded: Metrics, requests: int) -> LoadPlan:
        """The plan once the unbounded probe broke an SLO (`unbounded` its metrics)."""
        if search.knob == "max_concurrency":
            ceiling = float(max(1, requests))
            start = search.start if search.start is not None else 1.0
            plan = LoadPlan(search, min(ceiling, float(max(1, round(start)))), 1.0, ceiling)
        else:
            rate = unbounded.request_throughput_req_s
            start = search.start if search.start is not None else rate / 8
            plan = LoadPlan(search, start, rate * RATE_FLOOR, rate * RATE_CEILING)
        for _ in range(search.skip):  # the loads the search would rise through, exactly
            plan.start = plan._clamped(plan.start * plan._growth())
        return plan

    def record(self, probe: LoadProbe) -> None:
        self.last = probe.load
        self.tried.add(probe.load)
        if probe.held:
            self.held = probe.load if self.held is None else max(self.held, probe.load)
        else:
            self.broke = probe.load if self.broke is None else min(self.broke, probe.load)

    def next_load(self) -> float | None:
        """The next load to probe; None when the search is done."""
        if self.last is None:
            return self.start
        if self.held is not None and self.broke is not None:
            return None if self._close(self.held, self.broke) else self._new(self._middle())
        growth = self._growth()
        if self.broke is None:  # everything held so far: go up
            return None if self.last >= self.ceiling else self._new(self.last * growth)
        return None if self.last <= self.floor else self._new(self.last / growth)

    def _middle(self) -> float:
        assert self.held is not None and self.broke is not None
        return (self.held + self.broke) / 2

    def _close(self, held: float, broke: float) -> bool:
        if broke <= held:
            return True  # a lower load broke than one that held (noise): stop here
        if self.search.knob == "max_concurrency" and broke - held <= 1:
            return True
        return (broke - held) / held <= self.search.tolerance

    def _growth(self) -> float:
        return max(self.search.growth, 1.0 + self.search.tolerance)

    def _clamped(self, load: float) -> float:
        load = min(self.ceiling, max(self.floor, load))
        if self.search.knob == "max_concurrency":
            load = float(round(load))
        return load

    def _new(self, load: float) -> float | None:
        load = self._clamped(load)
        return None if load in self.tried else load


RANKING_TOLERANCE = 0.25
"""The tolerance of a coarse load search (`coarse`): two bisection steps after the bracket
instead of five at the default 5%."""
RANKING_SKIP = 2
"""... and it starts two growth steps up (at half the unbounded probe's throughput by default,
where the knee of a serving engine usually is, instead of an eighth)."""


def coarse(
    workload: Workload, tolerance: float = RANKING_TOLERANCE, skip: int = RANKING_SKIP
) -> Workload:
    """`workload` with each load search (its own and its `also` workloads') starting `skip`
    growth steps above its start and stopping once the knee is known within `tolerance` (or
    within its own tolerance when that is wider).

    Its start is the full search's start raised by the very steps the full search would
    take, so it rises or falls through the full search's loads. When the full search's start
    held (the usual case) and the SLOs break at every load above one that breaks (as without
    noise), it probes only loads the full search probes: the same bracket between a load that
    held and the next one up that broke, bisected at the same midpoints, stopping earlier
    (the tolerance is kept at most `growth` - 1, so the growth factor stays the same). Its
    knee is then one of the full search's held loads, at most `tolerance` below the full
    search's knee. Screening can rank goodput candidates with it; a trial's own measurement is
    always the full search, which reads the shared loads back (`runners.sim.sim_cache`)."""
    search = workload.load_search
    if search is not None:
        wider = max(search.tolerance, min(tolerance, search.growth - 1.0))
        search = dataclasses.replace(search, tolerance=wider, skip=search.skip + skip)
    also = tuple(coarse(each, tolerance) for each in workload.also)
    return dataclasses.replace(workload, load_search=search, also=also)

"""Each workload of a trial as the study stores it: its values and, with goodput, its load curve.

Place in the data flow: `optimizer.record` writes `stored_runs` of a completed trial whose
runner measured a load search or several workloads (`TrialOutcome.workloads`) into the user
attribute ``workload_runs``, and reads it back as `StoredRun`s on the `TrialRecord`; the report
(per-workload tables, goodput curves, the empty-front explanation) and validation (the knee a
rate sweep must confirm) read them there. Loads are stored as numbers, an unbounded load as
None (JSON has no infinity).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from optimizer.objectives import TrialValues, objective_values
from optimizer.spec.models import ObjectivesSection
from runners.types import TrialOutcome

WORKLOAD_RUNS = "workload_runs"


@dataclass(frozen=True)
class StoredProbe:
    """One load of a search: the load, the objective values there, the metrics, the SLOs
    that broke."""

    load: float
    throughput: float
    latency: float
    metrics: Mapping[str, float]
    broken: tuple[str, ...]

    @property
    def held(self) -> bool:
        return not self.broken


@dataclass(frozen=True)
class StoredRun:
    """One workload of a trial: weight, objective values, SLO constraints, metrics, and the
    load search's knob ("" without one) and probes in the order measured."""

    name: str
    weight: float
    throughput: float
    latency: float
    constraints: Mapping[str, float]
    metrics: Mapping[str, float]
    knob: str = ""
    probes: tuple[StoredProbe, ...] = ()

    @property
    def knee(self) -> StoredProbe | None:
        held = [p for p in self.probes if p.held]
        return max(held, key=lambda p: p.load) if held else None

    def by_load(self) -> tuple[StoredProbe, ...]:
        return tuple(sorted(self.probes, key=lambda p: p.load))


def stored_runs(
    outcome: TrialOutcome, worth: TrialValues, objectives: ObjectivesSection
) -> list[dict[str, object]]:
    """The user attribute of a completed trial's workloads (`outcome.workloads` in order)."""
    out: list[dict[str, object]] = []
    for run, values in zip(outcome.workloads, worth.runs, strict=True):
        entry: dict[str, object] = {
            "name": run.name,
            "weight": values.weight,
            "values": list(values.values),
            "constraints": values.constraints,
            "metrics": run.metrics.flat(),
        }
        if run.curve is not None:
            entry["knob"] = run.curve.knob
            entry["probes"] = [
                {
                    "load": None if math.isinf(p.load) else p.load,
                    "values": list(objective_values(p.metrics, objectives)),
                    "metrics": p.metrics.flat(),
                    "broken": list(p.broken),
                }
                for p in run.curve.probes
            ]
        out.append(entry)
    return out


def read_runs(raw: object) -> tuple[StoredRun, ...]:
    """The stored workloads of a trial (() when it has none, as every older trial)."""
    if not isinstance(raw, list):
        return ()
    return tuple(_run(entry) for entry in raw if isinstance(entry, dict))


def _run(entry: dict[str, object]) -> StoredRun:
    tput, lat = _pair(entry.get("values"))
    probes = entry.get("probes")
    return StoredRun(
        name=str(entry.get("name", "?")),
        weight=_float(entry.get("weight"), 1.0),
        throughput=tput,
        latency=lat,
        constraints=_numbers(entry.get("constraints")),
        metrics=_numbers(entry.get("metrics")),
        knob=str(entry.get("knob", "")),
        probes=tuple(_probe(p) for p in probes if isinstance(p, dict))
        if isinstance(probes, list)
        else (),
    )


def _probe(entry: dict[str, object]) -> StoredProbe:
    tput, lat = _pair(entry.get("values"))
    load = entry.get("load")
    broken = entry.get("broken")
    return StoredProbe(
        load=math.inf if load is None else _float(load, math.inf),
        throughput=tput,
        latency=lat,
        metrics=_numbers(entry.get("metrics")),
        broken=tuple(str(b) for b in broken) if isinstance(broken, list) else (),
    )


def _pair(raw: object) -> tuple[float, float]:
    if isinstance(raw, list) and len(raw) == 2:
        return _float(raw[0], math.nan), _float(raw[1], math.nan)
    return math.nan, math.nan


def _float(raw: object, default: float) -> float:
    return float(raw) if isinstance(raw, int | float) else default


def _numbers(raw: object) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}

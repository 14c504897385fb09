"""Objective values of a trial, as the space file's `objectives` section defines them.

Two objectives, in this order: throughput (maximized) and a latency percentile (minimized).
Throughput is for the whole node group, or divided by the GPUs used when `scope: gpu`, so that
configurations of different sizes compare fairly. With `goodput`, every trial runs a load
search (`load_search`, carried to the runner on the workload by `trial_workload`) and the
throughput objective is the throughput at the knee, the highest load at which every SLO held
(0 when no load did), with the latency objective measured there too. With several weighted
`workloads`, the values are their weighted means or their worst case (`combine`). SLOs become
constraint values in Optuna's convention: a trial is feasible when every value is <= 0 (value -
max, or min - value), on every workload.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.spec.models import ObjectivesSection, Slo, StudySpec
from runners.types import LoadSearch, Metrics, TrialOutcome, Workload, WorkloadRun

DIRECTIONS = ("maximize", "minimize")


def objective_values(metrics: Metrics, objectives: ObjectivesSection) -> tuple[float, float]:
    return throughput_value(metrics, objectives), latency_value(metrics, objectives)


def throughput_value(metrics: Metrics, objectives: ObjectivesSection) -> float:
    spec = objectives.throughput
    by_metric = {
        "output_throughput": metrics.output_throughput_tok_s,
        "total_token_throughput": metrics.total_token_throughput_tok_s,
        "request_throughput": metrics.request_throughput_req_s,
    }
    value = by_metric[spec.metric]
    return value / metrics.num_gpus if spec.scope == "gpu" else value


def latency_value(metrics: Metrics, objectives: ObjectivesSection) -> float:
    spec = objectives.latency
    return metrics.latency(spec.metric).percentile(spec.percentile)


def metric_names(objectives: ObjectivesSection) -> list[str]:
    """Names shown by optuna-dashboard for the two objectives."""
    return [objectives.throughput_label, objectives.latency_label]


def constraint_values(metrics: Metrics, slos: list[Slo]) -> dict[str, float]:
    """One constraint per SLO, keyed by its readable name; <= 0 means the SLO is met."""
    return {slo.name: slo.limit.excess(metrics) for slo in slos}


# --- what a trial runs, and what it is worth ---------------------------------------------------


def load_search(objectives: ObjectivesSection) -> LoadSearch | None:
    """The load search of a goodput objective (None without one)."""
    goodput = objectives.goodput
    if goodput is None:
        return None
    return LoadSearch(
        slos=tuple(slo.limit for slo in objectives.slos),
        knob=goodput.load,
        start=goodput.start,
        growth=goodput.growth,
        tolerance=goodput.tolerance,
        max_probes=goodput.max_probes,
    )


def trial_workload(spec: StudySpec) -> Workload:
    """What every trial sends: the first workload with the goodput load search (if any), and
    the study's further workloads as `also`, each with the same search."""
    search = load_search(spec.objectives)
    loads = [
        dataclasses.replace(spec.workload_for(section), load_search=search)
        for section, _ in spec.weighted_workloads
    ]
    return dataclasses.replace(loads[0], also=tuple(loads[1:]))


@dataclass(frozen=True)
class RunValues:
    """One workload of a trial: its name, weight, objective values and SLO constraints."""

    name: str
    weight: float
    values: tuple[float, float]
    constraints: dict[str, float]


@dataclass(frozen=True)
class TrialValues:
    """What a completed trial is worth: the two objective values, the SLO constraints (the
    worst over the workloads), and each workload's own values."""

    values: tuple[float, float]
    constraints: dict[str, float]
    runs: tuple[RunValues, ...]


def trial_values(outcome: TrialOutcome, spec: StudySpec) -> TrialValues:
    """The objective values of a trial that completed (`outcome.metrics` is set)."""
    assert outcome.metrics is not None, "only a completed trial has objective values"
    runs = outcome.workloads or (WorkloadRun(spec.workload.name, outcome.metrics),)
    weights = dict((section.name, weight) for section, weight in spec.weighted_workloads)
    each = tuple(run_values(run, weights.get(run.name, 1.0), spec) for run in runs)
    return TrialValues(combine(each, spec.objectives), worst_constraints(each), each)


def run_values(run: WorkloadRun, weight: float, spec: StudySpec) -> RunValues:
    """A workload's values: at the knee of its load search; goodput 0 when no load held."""
    objectives = spec.objectives
    tput, lat = objective_values(run.metrics, objectives)
    if not run.held:
        tput = 0.0
    return RunValues(
        run.name, weight, (tput, lat), constraint_values(run.metrics, objectives.slos)
    )


def combine(runs: Sequence[RunValues], objectives: ObjectivesSection) -> tuple[float, float]:
    """One workload: its values. Several: weighted means, or the worst of each objective."""
    if len(runs) == 1:
        return runs[0].values
    if objectives.combine == "worst":
        return min(r.values[0] for r in runs), max(r.values[1] for r in runs)
    total = sum(r.weight for r in runs)
    return (
        sum(r.weight * r.values[0] for r in runs) / total,
        sum(r.weight * r.values[1] for r in runs) / total,
    )


def worst_constraints(runs: Sequence[RunValues]) -> dict[str, float]:
    """Each SLO's constraint on the workload where it is furthest from holding."""
    names = list(runs[0].constraints)
    return {name: max(r.constraints[name] for r in runs) for name in names}

"""Why the front is empty under the SLOs: which SLO binds, which trial came closest and by how
much, and at what load it would meet them.

Place in the data flow: after a study, when no completed trial meets every SLO, the closing
lines (`optimizer.report.pareto`) and the report read `slo_gap(study)`. The SLOs are stored
with the study (`store_slos`, by the loop); each trial's metrics by the record. The load that
would meet the SLOs comes from the closest trial's own load curve in a goodput study, else from
the short rate search `optimizer.rescue` ran on that trial at the end of the study
(`RESCUE_ATTR`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from optimizer.record import TrialRecord, read_all
from optimizer.spec.models import StudySpec
from runners.types import SloLimit

SLOS_ATTR = "slos"
RESCUE_ATTR = "slo_rescue"


def store_slos(study: optuna.Study, spec: StudySpec) -> None:
    slos = [{"metric": s.metric, "max": s.max, "min": s.min} for s in spec.objectives.slos]
    if study.user_attrs.get(SLOS_ATTR, []) != slos:
        study.set_user_attr(SLOS_ATTR, slos)


def stored_slos(study: optuna.Study) -> list[SloLimit]:
    raw = study.user_attrs.get(SLOS_ATTR, [])
    out = []
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("metric"), str):
            out.append(SloLimit(entry["metric"], entry.get("max"), entry.get("min")))
    return out


def value_of(metrics: Mapping[str, float], metric: str) -> float:
    """An SLO metric from a trial's stored metrics (as `SloLimit.value` reads `Metrics`)."""
    if metric == "failed_fraction":
        done = metrics.get("completed", 0.0) + metrics.get("failed", 0.0)
        return metrics.get("failed", 0.0) / max(1.0, done)
    if metric.endswith("_per_gpu"):
        return metrics[metric.removesuffix("_per_gpu")] / max(1.0, metrics.get("num_gpus", 1.0))
    return metrics[metric]


@dataclass(frozen=True)
class Miss:
    """How far one trial is from one SLO: its value, the bound, and the relative excess."""

    slo: str
    value: float
    bound: float
    relative: float


def misses(metrics: Mapping[str, float], slos: Sequence[SloLimit]) -> list[Miss]:
    """Every SLO the metrics break, the furthest (relatively) first."""
    out = []
    for slo in slos:
        if slo.metric not in metrics and slo.metric != "failed_fraction":
            continue
        value = value_of(metrics, slo.metric)
        bound = slo.max if slo.max is not None else (slo.min or 0.0)
        excess = value - bound if slo.max is not None else bound - value
        if excess > 0:
            out.append(Miss(slo.name, value, bound, excess / abs(bound) if bound else math.inf))
    return sorted(out, key=lambda m: -m.relative)


@dataclass(frozen=True)
class SloGap:
    """The closest trial, what it misses (binding SLO first), how many completed trials break
    each SLO, and the load at which the closest holds every SLO (`holds_at`, None when no
    load tried did; then `lowest_tried` is the lowest load measured)."""

    closest: TrialRecord
    misses: tuple[Miss, ...]
    broken_by: Mapping[str, int]
    completed: int
    knob: str = ""
    holds_at: float | None = None
    lowest_tried: float | None = None
    source: str = ""

    @property
    def binding(self) -> Miss:
        return self.misses[0]

    def lines(self) -> list[str]:
        """The explanation, as sentences."""
        bind = self.binding
        broken = self.broken_by.get(bind.slo, 0)
        out = [
            f"No trial meets every SLO. The binding one is {bind.slo}: {broken} of "
            f"{self.completed} completed trials break it.",
            f"Closest: trial {self.closest.number}, "
            + "; ".join(
                f"{m.slo.split(' ')[0]} {m.value:,.1f} ({m.relative:+.0%} beyond {m.bound:g})"
                for m in self.misses
            )
            + ".",
        ]
        unit = "req/s (Poisson)" if self.knob == "request_rate" else "requests in flight"
        what = "a request rate" if self.knob == "request_rate" else "a concurrency"
        if self.holds_at is not None:
            out.append(
                f"At {what} of {self.holds_at:,.2f} {unit}, trial {self.closest.number} meets "
                f"every SLO ({self.source})."
            )
        elif self.lowest_tried is not None:
            out.append(
                f"Even at {what} of {self.lowest_tried:,.2f} {unit}, the lowest tried, trial "
                f"{self.closest.number} misses: lower load alone will not meet {bind.slo}; "
                "relax it or change the hardware or model."
            )
        return out


def slo_gap(study: optuna.Study) -> SloGap | None:
    """Why no trial meets the SLOs (None when one does, or nothing completed, or no SLOs)."""
    slos = stored_slos(study)
    records = [
        r for r in read_all(study, (TrialState.COMPLETE,)) if r.metrics and r.values is not None
    ]
    if not slos or not records or any(r.feasible for r in records):
        return None
    scored = [(r, misses(_where_closest(r), slos)) for r in records]
    scored = [(r, m) for r, m in scored if m]
    if not scored:
        return None
    closest, its = min(scored, key=lambda pair: (max(m.relative for m in pair[1]), pair[0].number))
    broken_by: dict[str, int] = {}
    for _, found in scored:
        for miss in found:
            broken_by[miss.slo] = broken_by.get(miss.slo, 0) + 1
    knob, holds_at, lowest, source = _load_that_holds(study, closest)
    return SloGap(closest, tuple(its), broken_by, len(records), knob, holds_at, lowest, source)


def _where_closest(record: TrialRecord) -> Mapping[str, float]:
    """The trial's metrics where it came closest: its lowest load probed with goodput."""
    for run in record.workload_runs:
        if run.probes:
            return run.by_load()[0].metrics
    return record.metrics or {}


def _load_that_holds(
    study: optuna.Study, record: TrialRecord
) -> tuple[str, float | None, float | None, str]:
    """(knob, load holding every SLO, lowest load tried, where from): from the trial's curve
    or the rescue search."""
    for run in record.workload_runs:
        if run.probes:
            knee = run.knee
            load = knee.load if knee else None
            return run.knob, load, run.by_load()[0].load, "its load search"
    rescue = study.user_attrs.get(RESCUE_ATTR)
    if isinstance(rescue, dict) and rescue.get("trial") == record.number:
        knee, lowest = rescue.get("knee"), rescue.get("lowest")
        return (
            str(rescue.get("knob", "request_rate")),
            float(knee) if isinstance(knee, int | float) else None,
            float(lowest) if isinstance(lowest, int | float) else None,
            "a rate search on it at the end of the study",
        )
    return "", None, None, ""

"""At the end of a study whose front is empty under the SLOs: a short rate search on the trial
that came closest, to say at what load it would meet them.

Place in the data flow: `optimizer.loop.run_study` calls `rescue_empty_front` after the last
trial, before the closing lines. It runs through the study's own pool (the runner the trials
used): the closest trial's candidate, the study's first workload with a `LoadSearch` over the
SLOs, and stores the knee with the study (`optimizer.slo_gap.RESCUE_ATTR`), where the closing
lines and the report read it. Goodput studies need none: every trial has its curve.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import optuna

from optimizer.config import StudyConfig
from optimizer.slo_gap import RESCUE_ATTR, slo_gap
from optimizer.space import candidate_from_params
from runners.pool import TrialPool
from runners.types import LoadSearch, TrialOutcome

RESCUE_KEY = -1
"""The pool key of the rescue search (trial numbers are never negative)."""


def rescue_empty_front(study: optuna.Study, config: StudyConfig, pool: TrialPool) -> None:
    """Search the load at which the closest trial meets every SLO, if no trial does."""
    spec = config.spec
    if spec.objectives.goodput is not None:
        return
    gap = slo_gap(study)
    if gap is None:
        return
    existing = study.user_attrs.get(RESCUE_ATTR)
    if isinstance(existing, dict) and existing.get("trial") == gap.closest.number:
        return
    if not config.quiet:
        print(
            f"No trial meets every SLO; searching the request rate at which trial "
            f"{gap.closest.number} (the closest) would.",
            flush=True,
        )
    search = LoadSearch(tuple(slo.limit for slo in spec.objectives.slos), max_probes=8)
    workload = dataclasses.replace(spec.workload_spec, load_search=search)
    pool.submit(RESCUE_KEY, candidate_from_params(spec, gap.closest.params), workload)
    outcome: TrialOutcome | None = None
    done = False
    while not done:
        for finished in pool.wait(2.0):
            if finished.key == RESCUE_KEY:
                outcome, done = finished.outcome, True
    curve = outcome.workloads[0].curve if outcome is not None and outcome.workloads else None
    if curve is None:
        reason = outcome.crash.message[:200] if outcome and outcome.crash else "worker lost"
        print(
            f"warning: the rate search on trial {gap.closest.number} failed: {reason}",
            file=sys.stderr,
        )
        return
    knee = curve.knee
    study.set_user_attr(
        RESCUE_ATTR,
        {
            "trial": gap.closest.number,
            "knob": curve.knob,
            "knee": None if knee is None or math.isinf(knee.load) else knee.load,
            "lowest": curve.lowest.load,
            "probes": [
                [p.load if math.isfinite(p.load) else None, list(p.broken)] for p in curve.probes
            ],
        },
    )

"""Warnings about a workload that makes an objective, an SLO or a searched setting meaningless.

Place in the data flow: `optimizer.cli` prints them when a study starts (the space file is
valid; the study runs), the loop stores them with the study (`store_warnings`) and the report
repeats them (`stored_warnings`). Each check reads the request lists the trials will send
(`runners.workload.make_requests`, cached) and the objectives:

- every output one token long while TPOT or ITL is an objective or SLO (they are 0 for all);
- no shared prefixes while a searched setting turns prefix caching on or off (found by
  resolving each of its values through the engine's adapter: engine knowledge stays there);
- every request sent at once while an SLO bounds TTFT or E2E latency and goodput is off (those
  then measure the queue of the whole workload);
- fewer than 100 requests while a p99 is an objective or SLO (p99 is then about the maximum).
"""

from __future__ import annotations

import math

import numpy as np
import optuna

from optimizer.spec.models import (
    BoolParam,
    CategoricalParam,
    FloatParam,
    IntParam,
    StudySpec,
)
from runners.catalog import get_model
from runners.engines import resolve_candidate
from runners.types import Candidate, SettingValue, Workload
from runners.workload import make_requests

ATTR = "workload_warnings"
FEW_REQUESTS = 100


def workload_warnings(spec: StudySpec) -> list[str]:
    """Every warning for `spec`'s search workloads (empty when none applies)."""
    objectives = spec.objectives
    metrics = [objectives.latency.metric, *(slo.metric for slo in objectives.slos)]
    p99 = objectives.latency.percentile == 99 or any(
        slo.metric.startswith("p99_") for slo in objectives.slos
    )
    out: list[str] = []
    shares_prefixes = False
    for section, _ in spec.weighted_workloads:
        workload = spec.workload_for(section)
        requests = make_requests(workload)
        name = f"workload {workload.name!r}"
        shares_prefixes = shares_prefixes or requests.chains is not None
        per_token = [m for m in metrics if "tpot" in m or "itl" in m]
        if per_token and bool(np.all(requests.output_len <= 1)):
            out.append(
                f"{name}: every output is 1 token, so {', '.join(sorted(set(per_token)))} is 0 "
                "for every trial; give longer outputs or another latency metric"
            )
        queued = [
            slo.name
            for slo in objectives.slos
            if slo.max is not None and ("ttft" in slo.metric or "e2el" in slo.metric)
        ]
        if queued and objectives.goodput is None and _all_at_once(workload):
            out.append(
                f"{name}: all {requests.size:,} requests are sent at once, so "
                f"{', '.join(queued)} bounds the time spent queueing behind the whole workload; "
                "set a request_rate or max_concurrency, or use the goodput preset"
            )
        if p99 and requests.size < FEW_REQUESTS:
            out.append(
                f"{name}: {requests.size} requests; a p99 over fewer than {FEW_REQUESTS} is "
                "close to the maximum of one request"
            )
    knobs = prefix_cache_settings(spec)
    if knobs and not shares_prefixes:
        out.append(
            "no request shares a prompt prefix with another, yet prefix caching is searched "
            f"({', '.join(knobs)}): it can only cost bookkeeping here; use a workload with "
            "shared prefixes (prefix_groups, turns, or a trace) or leave it out"
        )
    return out


def _all_at_once(workload: Workload) -> bool:
    return (
        math.isinf(workload.request_rate)
        and workload.max_concurrency is None
        and (not make_requests(workload).send_s.any())
    )


def prefix_cache_settings(spec: StudySpec) -> list[str]:
    """Searched settings (``engine.setting``) whose values turn prefix caching on and off."""
    variant = next(iter(spec.model.variants))
    checkpoint = spec.model.checkpoint(variant)
    model = get_model(spec.model.name).name
    found: list[str] = []
    for engine, section in spec.engines.items():
        for setting in section.settings:
            seen: set[bool] = set()
            for value in _values(section.alternatives(setting)):
                candidate = Candidate.make(
                    engine, section.version, model, checkpoint, variant, {setting: value}
                )
                config = resolve_candidate(candidate, spec.node_group).config
                if config is not None:
                    seen.add(config.prefix_caching)
            if len(seen) > 1:
                found.append(f"{engine}.{setting}")
    return found


def _values(
    params: list[IntParam | FloatParam | CategoricalParam | BoolParam],
) -> list[SettingValue]:
    """The values of a switch-like setting (numbers are never a prefix-caching switch)."""
    values: list[SettingValue] = []
    for param in params:
        if isinstance(param, CategoricalParam):
            values += [v for v in param.choices if isinstance(v, bool | str)]
        elif isinstance(param, BoolParam):
            values += [True, False]
    return values


def store_warnings(study: optuna.Study, warnings: list[str]) -> None:
    if study.user_attrs.get(ATTR, []) != warnings:
        study.set_user_attr(ATTR, warnings)


def stored_warnings(study: optuna.Study) -> list[str]:
    raw = study.user_attrs.get(ATTR, [])
    return [str(w) for w in raw] if isinstance(raw, list) else []

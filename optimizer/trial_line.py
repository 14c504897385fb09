"""The text of one finished trial's progress line: position, kind of numbers, the space's own
objectives (or the crash), and the settings that differ from the engine defaults.

Place in the data flow: `optimizer.progress` prints these lines (above its live display on a
terminal); the values are the trial's objective values as the record computes them
(`optimizer.objectives.trial_values`, by the caller), named, with units and directions, as the
space file's `objectives` section defines them, so a study of per-GPU throughput and p95 E2E
latency shows exactly those.
"""

from __future__ import annotations

import math

from optimizer.feasibility import Verdict
from optimizer.provenance import Kind
from optimizer.spec.models import LatencyObjective, ObjectivesSection
from runners.engines import Resolved
from runners.types import TrialOutcome

MAX_DESCRIPTION = 110
SECONDS_FROM_MS = 10_000.0
"""Latencies from this many milliseconds on are shown in seconds."""


def describe(resolved: Resolved) -> str:
    """Engine, checkpoint and the settings that differ from the engine defaults."""
    candidate = resolved.candidate
    text = " ".join(f"{k}={v}" for k, v in resolved.minimal) or "(defaults)"
    full = f"{candidate.engine} {candidate.weight_dtype} {text}"
    return full if len(full) <= MAX_DESCRIPTION else full[: MAX_DESCRIPTION - 1] + "…"


def throughput_name(objectives: ObjectivesSection) -> tuple[str, str]:
    """The throughput objective's name and unit, e.g. ``output throughput``, ``tok/s per GPU``."""
    spec = objectives.throughput
    name = spec.metric.replace("_", " ")
    unit = ("req/s" if spec.metric == "request_throughput" else "tok/s") + (
        " per GPU" if spec.scope == "gpu" else ""
    )
    return (f"goodput ({name})" if objectives.goodput is not None else name), unit


def latency_name(spec: LatencyObjective) -> str:
    return f"p{spec.percentile} {spec.metric.upper()}"


def latency_text(ms: float) -> str:
    return f"{ms / 1000:>6.1f} s" if ms >= SECONDS_FROM_MS else f"{ms:>7.1f} ms"


def objectives_text(values: tuple[float, float], objectives: ObjectivesSection) -> str:
    """Both objective values with their names, units and directions."""
    name, unit = throughput_name(objectives)
    throughput, latency = values
    digits = 2 if throughput < 100 else 0
    return (
        f"max {name} {throughput:>9,.{digits}f} {unit}  "
        f"min {latency_name(objectives.latency)} {latency_text(latency)}"
    )


def progress_line(
    number: int,
    position: int,
    total: int,
    outcome: TrialOutcome | None,
    verdict: Verdict | None,
    objectives: ObjectivesSection,
    kind: Kind,
    values: tuple[float, float] | None = None,
) -> str:
    """The line of a finished trial: `values` are its objective values when it completed."""
    head = f"[{position:>3}/{total}] trial {number:>3}"
    if outcome is None:
        reason = verdict.crash_class if verdict is not None else "rejected"
        return f"{head}  PRUNED {reason} (pre-flight, no runner time)"
    if values is not None:
        result = f"{kind}  {objectives_text(values, objectives)}" + knee_note(outcome)
    elif outcome.crash is not None:
        result = f"{kind}  PRUNED {outcome.crash.crash_class}"
    else:
        result = "FAIL (infrastructure)"
    return f"{head}  {result}"


def knee_note(outcome: TrialOutcome) -> str:
    """Where a goodput trial's numbers were measured: its knee, or no load that held."""
    curve = outcome.workloads[0].curve if outcome.workloads else None
    if curve is None:
        return ""
    unit = "req/s" if curve.knob == "request_rate" else "in flight"
    knee = curve.knee
    if knee is None:
        return f"  no load holds the SLOs ({len(curve.probes)} tried; lowest shown)"
    at = "unbounded" if math.isinf(knee.load) else f"{knee.load:,.2f} {unit}"
    return f"  at the knee: {at} ({len(curve.probes)} loads)"

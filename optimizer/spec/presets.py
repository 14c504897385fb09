"""Intent-level parts of the space file: objective presets, the goodput load search, the
recommendation rule, and weighted workloads.

Place in the data flow: sections of the space file's models (`optimizer.spec.models` puts
them in `objectives`, `recommendation` and `workloads`). A preset fills in the two objectives
(explicit `throughput` / `latency` fields still win) and the default recommendation rule;
`goodput` turns the throughput objective into goodput, found by a load search inside every
trial (`runners.types.LoadSearch`, built by `optimizer.objectives.load_search`). Every field is
documented in docs/space-language.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from optimizer.spec.workload import WorkloadSection

Preset = Literal["throughput", "latency", "balanced", "goodput"]
RecommendRule = Literal["throughput", "latency", "balanced"]
Combine = Literal["weighted", "worst"]

_OUTPUT_TPOT: dict[str, object] = {
    "throughput": {"metric": "output_throughput"},
    "latency": {"metric": "tpot", "percentile": 99},
}
PRESETS: dict[str, dict[str, object]] = {
    "throughput": _OUTPUT_TPOT,
    "latency": {
        "throughput": {"metric": "output_throughput"},
        "latency": {"metric": "e2el", "percentile": 99},
    },
    "balanced": _OUTPUT_TPOT,  # the same objectives; the rule differs
    "goodput": {
        "throughput": {"metric": "request_throughput"},
        "latency": {"metric": "ttft", "percentile": 99},
        "goodput": {},
    },
}
"""What each preset fills in of `objectives` (a field given in the file wins)."""

PRESET_RULES: dict[str, RecommendRule] = {
    "throughput": "throughput",
    "latency": "latency",
    "balanced": "balanced",
    "goodput": "throughput",
}
"""The recommendation rule each preset implies (`recommendation.rule` overrides it)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GoodputSection(_Strict):
    """The load search that makes the throughput objective goodput: the throughput at the
    highest load at which every SLO holds (`runners.types.LoadSearch` has the algorithm)."""

    load: Literal["request_rate", "max_concurrency"] = "request_rate"
    start: float | None = Field(default=None, gt=0)
    growth: float = Field(default=2.0, gt=1, le=16)
    tolerance: float = Field(default=0.05, gt=0, lt=1)
    max_probes: int = Field(default=10, ge=2, le=40)


class RecommendationSection(_Strict):
    """How the configuration to deploy is picked (`optimizer.recommend`)."""

    rule: RecommendRule | None = None
    noise: float | Literal["auto"] = "auto"

    @field_validator("noise")
    @classmethod
    def _fraction(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(
                f"{value:g} is not a relative standard deviation; give a fraction such as "
                "0.02 (2% per run), or auto"
            )
        return value


class WeightedWorkload(WorkloadSection):
    """One of a study's several workloads, with its weight in the objective."""

    weight: float = Field(default=1.0, gt=0)


GOODPUT_NEEDS_SLOS = (
    "slos: goodput is the throughput at the highest load at which every SLO holds; give at "
    "least one upper bound, e.g. {metric: p99_ttft_ms, max: 2000}"
)


def expand_preset(data: object) -> object:
    """The raw `objectives` mapping with its preset's fields filled in (the file's win)."""
    if not isinstance(data, dict) or "preset" not in data:
        return data
    preset = data["preset"]
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"preset: {preset!r} is not one of {', '.join(PRESETS)}")
    return {**PRESETS[preset], **data}


def first_workload(data: object) -> object:
    """The raw space file with `workload` standing for the first of `workloads` (several,
    weighted): every stage that needs one workload uses it."""
    if not isinstance(data, dict) or "workloads" not in data:
        return data
    if "workload" in data:
        raise ValueError(
            "workloads: give either workload (one) or workloads (several, with weights), not both"
        )
    several = data["workloads"]
    if isinstance(several, list) and several and isinstance(several[0], dict):
        return {**data, "workload": {k: v for k, v in several[0].items() if k != "weight"}}
    return data


def check_workload_names(names: list[str]) -> None:
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise ValueError(f"workloads.{index}.name: {name!r} is given twice")

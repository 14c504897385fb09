"""Validation measurements: what `optimizer.validate` measured, stored beside the study.

Place in the data flow: `optimizer.validate` re-runs configurations of a finished study and
saves each run as a `Measurement`, one trial each of a companion study ``<name>.validation`` in
the same storage (the search study keeps a single writer, its driver); the report reads them
back with `load_measurements`. Also the statistics both use: the 95% Student-t `interval` of
repeated runs and Pareto dominance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

Kind = Literal["repeat", "ablation", "sweep", "rate", "workload"]
KINDS: tuple[Kind, ...] = ("repeat", "ablation", "sweep", "rate", "workload")
ATTR = "validation"
RATE_LEVELS = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)
"""Rates of validation's goodput sweep, as multiples of the recommended trial's knee."""


def companion_name(study_name: str) -> str:
    return f"{study_name}.validation"


@dataclass(frozen=True)
class Measurement:
    """One validation run. `subject` names the configuration ("baseline", "trial 48",
    "best without max-num-seqs"); `label` the variation (repeat index, reverted setting,
    concurrency, request rate, workload name). Objective values are None when the run crashed;
    `broken` names the SLOs the run broke (comma-separated; "" when all held)."""

    kind: Kind
    subject: str
    trial: int | None
    label: str
    serve_command: str
    throughput: float | None = None
    latency: float | None = None
    p99_ttft_ms: float | None = None
    failed: int = 0
    crash_class: str = ""
    detail: str = ""
    broken: str = ""

    @property
    def ok(self) -> bool:
        return self.throughput is not None and self.latency is not None


# --- storage of measurements ---------------------------------------------------------------


def save_measurements(
    storage: str, study_name: str, measurements: Sequence[Measurement], info: dict[str, object]
) -> None:
    """Replace the companion study with these measurements (one trial each)."""
    name = companion_name(study_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=name, storage=storage)
        companion = optuna.create_study(
            study_name=name, storage=storage, directions=["maximize", "minimize"]
        )
        main = optuna.load_study(study_name=study_name, storage=storage)
        if main.metric_names:
            companion.set_metric_names(main.metric_names)
    companion.set_user_attr("info", info)
    trials: list[FrozenTrial] = []
    for m in measurements:
        attrs = {ATTR: dataclasses.asdict(m)}
        if m.ok:
            assert m.throughput is not None and m.latency is not None
            trials.append(create_trial(values=[m.throughput, m.latency], user_attrs=attrs))
        else:
            trials.append(create_trial(state=TrialState.PRUNED, user_attrs=attrs))
    companion.add_trials(trials)


def load_measurements(
    storage: str, study_name: str
) -> tuple[list[Measurement], dict[str, object]]:
    """The stored validation of a study ([] when it has none)."""
    try:
        companion = optuna.load_study(study_name=companion_name(study_name), storage=storage)
    except KeyError:
        return [], {}
    out: list[Measurement] = []
    for trial in companion.get_trials(deepcopy=False):
        raw = trial.user_attrs.get(ATTR)
        if isinstance(raw, dict):
            out.append(Measurement(**raw))
    info = companion.user_attrs.get("info", {})
    return out, dict(info) if isinstance(info, dict) else {}


# --- statistics ----------------------------------------------------------------------------

# two-sided 95% Student t quantiles by degrees of freedom (1..30); 1.96 beyond
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True)
class Interval:
    """Mean of n runs with its 95% confidence half-width (Student t)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def interval(values: Sequence[float]) -> Interval:
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = statistics.fmean(values)
    if n == 1:
        return Interval(mean, math.inf, 1)
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
    return Interval(mean, t * statistics.stdev(values) / math.sqrt(n), n)


def dominated(point: tuple[float, float], others: Sequence[tuple[float, float]]) -> bool:
    """(throughput up, latency down): is `point` dominated by any of `others`?"""
    t, lat = point
    return any(
        ot >= t and ol <= lat and (ot > t or ol < lat) for ot, ol in others if (ot, ol) != point
    )

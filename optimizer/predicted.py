"""A real trial's prediction, stored before it ran, and how far it was from the measurement.

Place in the data flow: before a real trial starts, the shadow simulator (`optimizer.shadow`)
predicts it and `store_prediction` writes that prediction on the trial (one user attribute,
`shadow_prediction`: the predicted objective values, the spread, the crash probability and how
many of the study's own runs the simulator was fitted on). After the study, `prediction_rows`
sets each stored prediction against what the trial measured, and `error_summary` gives the
median and maximum errors over the study and over the trials predicted once the simulator had
seen at least 3, 5 and 10 runs; the report's "Simulator against measurement" section
(`optimizer.report.shadow`) and scripts/bench_sim_to_real.py read them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from optimizer.record import is_rejection
from optimizer.workload_runs import WORKLOAD_RUNS, read_runs

PREDICTION = "shadow_prediction"
MILESTONES = (3, 5, 10)


@dataclass(frozen=True)
class StoredPrediction:
    """What the simulator expected of a trial before it ran.

    `throughput` and `latency` are the predicted objective values (None: it expected no
    metrics, the configuration cannot run): with goodput, the goodput and latency at the
    predicted knee; with several workloads, combined as the study combines them, and
    `workloads` holds each one's (name, throughput, latency). `n_runs` is the number of the
    study's own trials the simulator was fitted on (0: the shipped calibration alone)."""

    throughput: float | None
    latency: float | None
    log_sigma: float
    crash_probability: float
    n_runs: int
    source: str
    workloads: tuple[tuple[str, float, float], ...] = ()

    def to_attr(self) -> dict[str, object]:
        attr: dict[str, object] = {
            "throughput": self.throughput,
            "latency": self.latency,
            "log_sigma": round(self.log_sigma, 4),
            "crash_probability": round(self.crash_probability, 4),
            "n_runs": self.n_runs,
            "source": self.source,
        }
        if self.workloads:
            attr["workloads"] = [list(each) for each in self.workloads]
        return attr


def store_prediction(trial: optuna.Trial, prediction: StoredPrediction) -> None:
    trial.set_user_attr(PREDICTION, prediction.to_attr())


def read_prediction(trial: FrozenTrial) -> StoredPrediction | None:
    """The stored prediction of `trial` (None: none stored, or not in this format)."""
    raw = trial.user_attrs.get(PREDICTION)
    if not isinstance(raw, dict):
        return None
    try:
        tput, lat = raw.get("throughput"), raw.get("latency")
        return StoredPrediction(
            throughput=float(tput) if tput is not None else None,
            latency=float(lat) if lat is not None else None,
            log_sigma=float(raw["log_sigma"]),
            crash_probability=float(raw["crash_probability"]),
            n_runs=int(raw["n_runs"]),
            source=str(raw.get("source", "")),
            workloads=tuple(
                (str(name), float(tput), float(lat))
                for name, tput, lat in raw.get("workloads", [])
            ),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class PredictionRow:
    """One real trial: what was predicted, what was measured (None: it crashed), the errors."""

    number: int
    prediction: StoredPrediction
    measured: tuple[float, float] | None
    measured_workloads: tuple[tuple[str, float, float], ...] = ()
    """Each workload's measured (name, throughput, latency) in a study of several."""

    @property
    def crashed(self) -> bool:
        return self.measured is None

    @property
    def throughput_error(self) -> float | None:
        """|predicted / measured - 1| of the throughput objective (None: nothing to compare)."""
        return _error(self.prediction.throughput, self.measured[0] if self.measured else None)

    @property
    def latency_error(self) -> float | None:
        return _error(self.prediction.latency, self.measured[1] if self.measured else None)


def _error(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or measured is None or measured <= 0.0:
        return None
    return abs(predicted / measured - 1.0)


def prediction_rows(trials: Iterable[FrozenTrial]) -> list[PredictionRow]:
    """Every trial that ran on the runner with a stored prediction, in trial order: completed
    ones with their objective values, runner crashes with None."""
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        prediction = read_prediction(trial)
        if prediction is None:
            continue
        if trial.state == TrialState.COMPLETE and trial.values:
            each = tuple(
                (run.name, run.throughput, run.latency)
                for run in read_runs(trial.user_attrs.get(WORKLOAD_RUNS))
            )
            values = (trial.values[0], trial.values[1])
            rows.append(PredictionRow(trial.number, prediction, values, each))
        elif trial.state == TrialState.PRUNED and not is_rejection(trial):
            rows.append(PredictionRow(trial.number, prediction, None))
    return rows


@dataclass(frozen=True)
class ErrorStats:
    """Median and maximum relative errors over `count` compared trials (None: no trial)."""

    label: str
    count: int
    throughput_median: float | None
    throughput_max: float | None
    latency_median: float | None
    latency_max: float | None


def error_stats(label: str, rows: Sequence[PredictionRow]) -> ErrorStats:
    return _stats(label, [r.throughput_error for r in rows], [r.latency_error for r in rows])


def workload_errors(rows: Sequence[PredictionRow]) -> list[ErrorStats]:
    """In a study of several workloads: the errors of each workload's own prediction, over
    the trials that stored both (one entry per workload, in the order first seen)."""
    pairs: dict[str, list[tuple[float | None, float | None]]] = {}
    for row in rows:
        measured = {name: (tput, lat) for name, tput, lat in row.measured_workloads}
        for name, tput, lat in row.prediction.workloads:
            if name in measured:
                m_tput, m_lat = measured[name]
                pairs.setdefault(name, []).append((_error(tput, m_tput), _error(lat, m_lat)))
    return [
        _stats(f"workload {name}", [t for t, _ in each], [la for _, la in each])
        for name, each in pairs.items()
    ]


def _stats(label: str, tput: Sequence[float | None], lat: Sequence[float | None]) -> ErrorStats:
    t = [e for e in tput if e is not None]
    la = [e for e in lat if e is not None]
    return ErrorStats(
        label,
        len(t),
        statistics.median(t) if t else None,
        max(t) if t else None,
        statistics.median(la) if la else None,
        max(la) if la else None,
    )


def error_summary(rows: Sequence[PredictionRow]) -> list[ErrorStats]:
    """Over the whole study, then over the trials predicted after the simulator had been
    fitted on at least 3, 5 and 10 of the study's runs (milestones no trial reached are left
    out)."""
    out = [error_stats("every real trial", rows)]
    for k in MILESTONES:
        later = [r for r in rows if r.prediction.n_runs >= k]
        if later:
            out.append(error_stats(f"after {k} real trials", later))
    return out


__all__ = [
    "MILESTONES",
    "PREDICTION",
    "ErrorStats",
    "PredictionRow",
    "StoredPrediction",
    "error_stats",
    "error_summary",
    "prediction_rows",
    "read_prediction",
    "store_prediction",
    "workload_errors",
]

"""Calibration from measured runs: per-engine corrections of the simulator, with uncertainty.

Place in the data flow: measured runs (a calibration CSV, `vllm bench serve` results, or a real
study's own trials) become `Observation`s; `fit_calibration` fits, per engine, the four factors
of an emulator truth profile (`runners.sim.profile`: compute_efficiency,
memory_bandwidth_efficiency, step_overhead, usable_memory) on top of a base calibration (the
shipped one by default); `predict` then simulates any configuration with the corrections of its
engine and returns a `Prediction` whose `log_sigma` carries the corrections' uncertainty.

The fit, per engine (engines do not share factors, so each is fitted on its own runs):

1. usable_memory from which runs started and which ran out of memory
   (`runners.sim.fit_memory`).
2. The other three by Levenberg-Marquardt (`runners.sim.fit_solver`) on log residuals of total
   token throughput, mean TTFT and mean TPOT (each scaled by `METRIC_SIGMA`), regularised toward
   1.0 by a Gaussian prior in log space (`PRIOR_SIGMA`), within `FACTOR_BOUNDS`. So one run is a
   valid input: what it cannot show stays at the prior.
3. Uncertainty: the Laplace approximation, i.e. the inverse of the Gauss-Newton Hessian (J'J
   plus the prior's precision) at the optimum, in log space: the reported sigma of each factor.

Speed: during the fit a run is simulated shortened, as one replica (of several filling a node)
with its share of the load and at most `MAX_REQUESTS` requests, and the full run's metrics are
reached through the ratio between the full and the shortened simulation. That ratio is taken at
the base calibration (one full simulation per run), then again where the first fit landed, and
the fit is refined from there, so the shortening costs no accuracy near the optimum. Jacobians
are taken once by forward differences, then kept current by Broyden updates. The reported
errors are leave-one-out when there are at least 3 runs, by the linearised (hat-matrix)
correction of each run's residuals, not by refitting.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from runners.bench.metrics import NoMetricValue, summarize
from runners.errors import CalibrationError
from runners.sim import simulate
from runners.sim.boundary import crash_probability as boundary_crash_probability
from runners.sim.boundary import rule_margins
from runners.sim.fit_memory import engine_calibration, fit_usable
from runners.sim.fit_solver import (
    FACTORS,
    FITTED_BY_METRICS,
    MAX_REQUESTS,
    METRIC_SIGMA,
    METRICS,
    PRIOR_SIGMA,
    Run,
    fit_engine,
    prepare,
    refresh,
    shortened,
)
from runners.sim.memory import plan_memory
from runners.sim.params import Calibration, fitted_calibration
from runners.sim.prediction import Prediction
from runners.sim.profile import EngineScales
from runners.sim.rules import check_config
from runners.types import Metrics, ServingConfig, Workload

SENSITIVITY = {
    "compute_efficiency": 0.6,
    "memory_bandwidth_efficiency": 0.6,
    "step_overhead": 0.4,
    "usable_memory": 0.0,
}
"""Typical |d log metric / d log factor|, used by `predict` to turn the factors' sigmas into a
metric sigma without simulating each candidate several times."""
NOISE_FLOOR = 0.03
"""Smallest `log_sigma` of a prediction: run-to-run variation of a real engine."""
CONTRADICTION_RATIO = 1.5
"""Runs of one configuration and workload whose throughputs differ by more: an error."""
POOR_ERROR = {"total_token_throughput_tok_s": 0.15, "mean_ttft_ms": 0.35, "mean_tpot_ms": 0.3}
"""A median error above these makes the fit poor."""


@dataclass(frozen=True)
class Observation:
    """One measured run: what ran (resolved, replicas included), what was sent (one request
    list: no load search, no further workloads), what came out (None: it crashed)."""

    config: ServingConfig
    workload: Workload
    metrics: Metrics | None
    label: str


@dataclass(frozen=True)
class CalibrationFit:
    """Per-engine corrections fitted from measured runs.

    `corrections` maps ``"<engine>.<factor>"`` to (factor, log-sigma); `calibration` is the base
    with the corrections applied (the GPU-keyed ones, memory bandwidth and usable memory, as
    the geometric mean over the engines measured on that GPU; `predict` applies each engine's
    own). `error` / `max_error` are median / max |relative error| per metric (leave-one-out
    when n_runs >= 3). A `poor` fit is never applied silently; `note` says why.
    """

    corrections: dict[str, tuple[float, float]]
    calibration: Calibration
    n_runs: int
    error: dict[str, float]
    max_error: dict[str, float]
    poor: bool
    note: str
    base: Calibration | None = None
    """The calibration the corrections apply to (None: the shipped one)."""
    spread: dict[str, float] = field(default_factory=dict)
    """Per engine: the corrections' uncertainty carried to the metrics (one-sigma, log units),
    averaged over the runs' configurations (what `predict` adds to its noise floor)."""

    def scales(self, engine: str) -> tuple[EngineScales, dict[str, float]]:
        """The engine's factors and their log-sigmas (1.0 and the prior when not measured)."""
        values = {f: self.corrections.get(f"{engine}.{f}", (1.0, PRIOR_SIGMA[f])) for f in FACTORS}
        return EngineScales(**{f: v[0] for f, v in values.items()}), {
            f: v[1] for f, v in values.items()
        }


def _check_contradictions(observations: Sequence[Observation]) -> None:
    seen: dict[tuple[ServingConfig, Workload], Observation] = {}
    for obs in observations:
        if obs.metrics is None:
            continue
        key = (obs.config, obs.workload)
        other = seen.setdefault(key, obs)
        if other is obs or other.metrics is None:
            continue
        a = other.metrics.total_token_throughput_tok_s
        b = obs.metrics.total_token_throughput_tok_s
        if max(a, b) > CONTRADICTION_RATIO * max(min(a, b), 1e-9):
            raise CalibrationError(
                f"{obs.label} and {other.label} ran the same configuration and workload but "
                f"measured {b:.0f} and {a:.0f} tok/s: contradictory runs; remove the wrong one"
            )


def _errors(
    runs: Sequence[Run], residuals: np.ndarray, jac: np.ndarray, covariance: np.ndarray
) -> dict[str, list[float]]:
    """|relative error| per metric of every run; leave-one-out (linearised) with >= 3 runs."""
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    row = 0
    for run in runs:
        metrics = list(run.offset)
        rows = slice(row, row + len(metrics))
        r = residuals[rows]
        if len(runs) >= 3:
            j = jac[rows]
            hat = j @ covariance @ j.T
            r = np.linalg.solve(np.eye(len(metrics)) - hat + 1e-9 * np.eye(len(metrics)), r)
        for metric, value in zip(metrics, r, strict=True):
            out[metric].append(abs(math.exp(float(value) * METRIC_SIGMA[metric]) - 1.0))
        row += len(metrics)
    return out


def fit_calibration(
    observations: Sequence[Observation], base: Calibration | None = None
) -> CalibrationFit:
    """Fit per-engine corrections to `observations` (see the module docstring)."""
    if not observations:
        raise CalibrationError("no runs to calibrate on: give at least one measured run")
    _check_contradictions(observations)
    corrections: dict[str, tuple[float, float]] = {}
    spread: dict[str, float] = {}
    errors: dict[str, list[float]] = {m: [] for m in METRICS}
    problems: list[str] = []
    for engine in sorted({o.config.engine for o in observations}):
        own = [o for o in observations if o.config.engine == engine]
        usable, usable_sigma, problem = fit_usable(own, base)
        if problem:
            problems.append(problem)
        runs: list[Run] = []
        for obs in own:
            if obs.metrics is None:
                continue
            run = prepare(obs, base, usable)
            if run is None:
                problems.append(f"{obs.label}: the simulator cannot reproduce this working run")
            else:
                runs.append(run)
        corrections[f"{engine}.usable_memory"] = (usable, usable_sigma)
        if not runs:
            for f in FITTED_BY_METRICS:
                corrections[f"{engine}.{f}"] = (1.0, PRIOR_SIGMA[f])
            continue
        theta, final, jac = fit_engine(runs, usable, base, np.zeros(3))
        if any(shortened(run.obs) is not None for run in runs):
            # the shortened runs' ratio to the full ones, taken again where the fit landed
            runs = [refresh(run, theta, usable, base) for run in runs]
            theta, final, jac = fit_engine(runs, usable, base, theta, jac)
        covariance = np.linalg.inv(
            jac.T @ jac + np.diag([PRIOR_SIGMA[f] ** -2 for f in FITTED_BY_METRICS])
        )
        scale = np.array([METRIC_SIGMA[m] for run in runs for m in run.offset])
        unscaled = jac * scale[:, None]  # d log metric / d log factor
        variances = np.einsum("ij,jk,ik->i", unscaled, covariance, unscaled)
        spread[engine] = math.sqrt(max(float(np.mean(variances)), 0.0))
        for index, f in enumerate(FITTED_BY_METRICS):
            sigma = math.sqrt(max(float(covariance[index, index]), 0.0))
            corrections[f"{engine}.{f}"] = (float(math.exp(theta[index])), sigma)
        for metric, values in _errors(runs, final, jac, covariance).items():
            errors[metric].extend(values)
    error = {m: statistics.median(v) for m, v in errors.items() if v}
    max_error = {m: max(v) for m, v in errors.items() if v}
    bad = [m for m, v in error.items() if v > POOR_ERROR[m]]
    if bad:
        problems.append(
            "median error above the limit for "
            + ", ".join(f"{m} ({100 * error[m]:.0f}% > {100 * POOR_ERROR[m]:.0f}%)" for m in bad)
        )
    calibration = applied_calibration(corrections, gpus_by_engine(observations), base)
    n = len(observations)
    summary = f"calibrated on {n} run{'s' if n != 1 else ''}"
    if "total_token_throughput_tok_s" in error:
        summary += f"; median throughput error {100 * error['total_token_throughput_tok_s']:.0f}%"
    note = summary + ("; poor fit: " + "; ".join(problems) if problems else "")
    return CalibrationFit(
        corrections, calibration, n, error, max_error, bool(problems), note, base, spread
    )


def gpus_by_engine(observations: Sequence[Observation]) -> dict[str, list[str]]:
    """The GPUs each engine was measured on (sorted)."""
    found: dict[str, set[str]] = {}
    for obs in observations:
        found.setdefault(obs.config.engine, set()).add(obs.config.gpu.name)
    return {engine: sorted(gpus) for engine, gpus in sorted(found.items())}


def applied_calibration(
    corrections: dict[str, tuple[float, float]],
    gpus: dict[str, list[str]],
    base: Calibration | None = None,
) -> Calibration:
    """`base` with every engine's corrections on the GPUs it was measured on; the GPU-keyed
    ones (bandwidth, usable memory) as the geometric mean over the engines measured on a GPU."""
    base = base or fitted_calibration()
    engines_on: dict[str, list[str]] = {}
    for engine, names in gpus.items():
        for gpu in names:
            engines_on.setdefault(gpu, []).append(engine)
    changes: dict[str, float] = {}
    for gpu, engines in sorted(engines_on.items()):
        shared = {
            f: math.exp(sum(math.log(corrections[f"{e}.{f}"][0]) for e in engines) / len(engines))
            for f in ("memory_bandwidth_efficiency", "usable_memory")
        }
        for engine in engines:
            own = {f: corrections[f"{engine}.{f}"][0] for f in FACTORS} | shared
            calib = engine_calibration(engine, gpu, EngineScales(**own), base)
            prefixes = (f"engine.{engine}.", f"gpu.{gpu}.")
            changes.update({k: v for k, v in calib.values if k.startswith(prefixes)})
    return base.updated(changes)


def calibration_for(config: ServingConfig, fit: CalibrationFit | None) -> Calibration:
    """The calibration to simulate `config` with: its engine's corrections on its GPU (the
    shipped calibration when there is no fit)."""
    if fit is None:
        return fitted_calibration()
    scales, _ = fit.scales(config.engine)
    return engine_calibration(config.engine, config.gpu.name, scales, fit.base)


def crash_probability(config: ServingConfig, calibration: Calibration, crashed: bool) -> float:
    """The chance `config` crashes: 1.0 when the engine's own rules refuse it, else the memory
    model's probability (`runners.sim.boundary`) for its memory plan under `calibration` (so a
    fitted usable-memory factor moves it), at least 0.5 when this simulation crashed."""
    if check_config(config) is not None:
        return 1.0
    odds = 0.0
    if not config.gpu.is_cpu:
        plan = plan_memory(config, calibration)
        odds = boundary_crash_probability(rule_margins(config, plan)).probability
    return max(odds, 0.5) if crashed else odds


def predict(
    config: ServingConfig, workload: Workload, fit: CalibrationFit | None, seed: int = 0
) -> Prediction:
    """Simulate `config` with its engine's corrections. `log_sigma` adds in quadrature a floor
    (the larger of `NOISE_FLOOR` and the fit's median error) and the corrections' uncertainty:
    the fit's own `spread` for a measured engine, else the prior sigmas times `SENSITIVITY`."""
    engine = config.engine
    if fit is None:
        sigmas, source = dict(PRIOR_SIGMA), "shipped calibration"
    else:
        _, sigmas = fit.scales(engine)
        source = fit.note.split(";")[0]
    calib = calibration_for(config, fit)
    result = simulate(config, workload, seed=seed, calibration=calib)
    metrics: Metrics | None = None
    if result.records is not None:
        try:
            metrics = summarize(result.records, num_gpus=config.replicas * config.gpus_per_replica)
        except NoMetricValue:
            metrics = None
    floor = NOISE_FLOOR
    if fit is not None and fit.error:
        floor = max(floor, float(np.median(list(fit.error.values()))))
    if fit is not None and engine in fit.spread:
        spread = fit.spread[engine] ** 2
    else:
        spread = sum((SENSITIVITY[f] * sigmas[f]) ** 2 for f in FACTORS)
    return Prediction(
        metrics=metrics,
        log_sigma=math.sqrt(floor**2 + spread),
        crash_probability=crash_probability(config, calib, metrics is None),
        source=source,
    )


__all__ = [
    "FACTORS",
    "MAX_REQUESTS",
    "METRICS",
    "PRIOR_SIGMA",
    "CalibrationFit",
    "Observation",
    "applied_calibration",
    "calibration_for",
    "crash_probability",
    "engine_calibration",
    "fit_calibration",
    "gpus_by_engine",
    "predict",
]

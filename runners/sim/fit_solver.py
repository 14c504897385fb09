"""The numerical core of a calibration fit: runs, their shortened simulations, the solver.

Place in the data flow: `runners.sim.fit.fit_calibration` turns each working run into a `Run`
(`prepare`: what it measured, and the offsets between its full-length and shortened
simulations), then calls `fit_engine` per engine: Levenberg-Marquardt on the scaled log
residuals of throughput, TTFT and TPOT against a Gaussian prior in log space, with a Jacobian
taken once by forward differences and kept current by Broyden updates. `refresh` takes a run's
offsets again at new factors. The constants here are the fit's priors, bounds and scales.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from runners.bench.metrics import NoMetricValue, summarize
from runners.errors import CalibrationError, ServingOptimizerError
from runners.sim import simulate
from runners.sim.fit_memory import USABLE_BOUNDS, USABLE_PRIOR_SIGMA, engine_calibration
from runners.sim.params import Calibration
from runners.sim.profile import EngineScales
from runners.types import Metrics, ServingConfig, Workload


class Observation(Protocol):
    """What the solver reads of a measured run (`runners.sim.fit.Observation`)."""

    @property
    def config(self) -> ServingConfig: ...
    @property
    def workload(self) -> Workload: ...
    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def label(self) -> str: ...


FACTORS = ("compute_efficiency", "memory_bandwidth_efficiency", "step_overhead", "usable_memory")
FITTED_BY_METRICS = FACTORS[:3]
PRIOR_SIGMA = {
    "compute_efficiency": 0.3,
    "memory_bandwidth_efficiency": 0.3,
    "step_overhead": 0.5,
    "usable_memory": USABLE_PRIOR_SIGMA,
}
"""Prior uncertainty of each factor (natural-log units) around 1.0."""
FACTOR_BOUNDS = {
    "compute_efficiency": (0.25, 2.0),
    "memory_bandwidth_efficiency": (0.25, 2.0),
    "step_overhead": (0.1, 10.0),
    "usable_memory": USABLE_BOUNDS,
}
METRIC_SIGMA = {
    "total_token_throughput_tok_s": 0.1,
    "mean_ttft_ms": 0.3,
    "mean_tpot_ms": 0.2,
}
"""Expected log mismatch of each metric after a good fit: run-to-run noise plus the simulator's
own model error, which varies from one configuration to the next (its median errors on published
runs are 5-20%). With smaller values one run moves the factors as if its error were systematic:
on the GPUStack runs, calibrating on one run per group then predicts the others worse."""
METRICS = tuple(METRIC_SIGMA)
MAX_REQUESTS = 200
FD_STEP = 0.05
MAX_ITERATIONS = 8


def metric_values(metrics: Metrics) -> dict[str, float]:
    flat = metrics.flat()
    return {m: flat[m] for m in METRICS if math.isfinite(flat[m]) and flat[m] > 0}


def shortened(obs: Observation) -> tuple[ServingConfig, Workload] | None:
    """The run cut to one replica and at most `MAX_REQUESTS` requests, with its share of the
    load (None: it is that short already)."""
    config, workload = obs.config, obs.workload
    replicas = max(1, config.replicas)
    if replicas == 1 and workload.num_prompts <= MAX_REQUESTS:
        return None

    def share(value: int) -> int:
        return max(1, math.ceil(value / replicas))

    limit = workload.max_concurrency
    short = replace(
        workload,
        num_prompts=min(MAX_REQUESTS, share(workload.num_prompts)),
        max_concurrency=None if limit is None else share(limit),
        request_rate=workload.request_rate / replicas,
    )
    return replace(config, replicas=1), short


def _simulated(
    obs: Observation, scales: EngineScales, base: Calibration | None, short: bool
) -> dict[str, float] | None:
    """The simulated metrics of `obs` (`short`: of its shortened form) at `scales` (None: the
    simulation crashes)."""
    config, workload = (shortened(obs) if short else None) or (obs.config, obs.workload)
    calib = engine_calibration(config.engine, config.gpu.name, scales, base)
    try:
        result = simulate(config, workload, seed=0, calibration=calib)
    except ServingOptimizerError as exc:
        raise CalibrationError(f"{obs.label}: the simulator cannot run it: {exc}") from None
    if result.records is None:
        return None
    try:
        return metric_values(summarize(result.records, num_gpus=config.gpus_per_replica))
    except NoMetricValue:
        return None


@dataclass
class Run:
    """One working run inside the fit: what it measured and the full-vs-short offsets."""

    obs: Observation
    measured: dict[str, float]
    offset: dict[str, float]  # log full(base) - log short(base) - log measured


def scales_of(theta: np.ndarray, usable: float) -> EngineScales:
    values = dict(zip(FITTED_BY_METRICS, np.exp(theta).tolist(), strict=True))
    return EngineScales(usable_memory=usable, **values)


def _residuals(
    runs: Sequence[Run], theta: np.ndarray, usable: float, base: Calibration | None
) -> np.ndarray | None:
    """Scaled log residuals of every run and metric (None: some run crashes at `theta`)."""
    out: list[float] = []
    for run in runs:
        sim = _simulated(run.obs, scales_of(theta, usable), base, short=True)
        if sim is None:
            return None
        for metric, offset in run.offset.items():
            value = sim.get(metric)
            if value is None:
                return None
            out.append((math.log(value) + offset) / METRIC_SIGMA[metric])
    return np.array(out)


def _jacobian(
    residual: Callable[[np.ndarray], np.ndarray | None], theta: np.ndarray, r0: np.ndarray
) -> np.ndarray:
    columns = []
    for j in range(theta.size):
        step = np.zeros_like(theta)
        step[j] = FD_STEP
        r1 = residual(theta + step)
        sign = 1.0
        if r1 is None:
            r1, sign = residual(theta - step), -1.0
        columns.append(np.zeros_like(r0) if r1 is None else sign * (r1 - r0) / FD_STEP)
    return np.stack(columns, axis=1)


def fit_engine(
    runs: Sequence[Run],
    usable: float,
    base: Calibration | None,
    theta: np.ndarray,
    jac: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(theta, scaled residuals, jacobian) of the three metric-fitted log factors, from `theta`.

    Levenberg-Marquardt; the Jacobian is taken by forward differences once (unless given) and
    then kept current by Broyden's rank-one updates, one simulation per run and iteration."""
    precision = np.diag([1.0 / PRIOR_SIGMA[f] ** 2 for f in FITTED_BY_METRICS])
    low = np.log([FACTOR_BOUNDS[f][0] for f in FITTED_BY_METRICS])
    high = np.log([FACTOR_BOUNDS[f][1] for f in FITTED_BY_METRICS])

    def residual(point: np.ndarray) -> np.ndarray | None:
        return _residuals(runs, point, usable, base)

    def cost(point: np.ndarray, r: np.ndarray) -> float:
        return float(r @ r + point @ precision @ point)

    r = residual(theta)
    if r is None:
        raise CalibrationError(
            f"{runs[0].obs.label}: the simulator cannot reproduce this working run; check "
            "that its configuration is the one that was measured"
        )
    if jac is None:
        jac = _jacobian(residual, theta, r)
    damping = 1e-2
    for _ in range(MAX_ITERATIONS):
        hessian = jac.T @ jac + precision
        gradient = jac.T @ r + precision @ theta
        step = np.linalg.solve(hessian + damping * np.diag(np.diag(hessian)), -gradient)
        trial = np.clip(theta + step, low, high)
        moved = trial - theta
        if float(np.max(np.abs(moved))) < 2e-3:
            break
        r_trial = residual(trial)
        if r_trial is None:
            damping *= 10
            continue
        jac = jac + np.outer(r_trial - r - jac @ moved, moved) / float(moved @ moved)
        if cost(trial, r_trial) < cost(theta, r):
            theta, r, damping = trial, r_trial, damping / 3
        else:
            damping *= 10
    return theta, r, jac


def offsets(
    obs: Observation, measured: dict[str, float], scales: EngineScales, base: Calibration | None
) -> dict[str, float] | None:
    """log full - log short - log measured per metric, at `scales` (None: it crashes)."""
    full = _simulated(obs, scales, base, short=False)
    short = full if shortened(obs) is None else _simulated(obs, scales, base, short=True)
    if full is None or short is None:
        return None
    return {
        m: math.log(full[m]) - math.log(short[m]) - math.log(measured[m])
        for m in METRICS
        if m in measured and m in full and m in short
    }


def refresh(run: Run, theta: np.ndarray, usable: float, base: Calibration | None) -> Run:
    """`run` with its full-vs-short offsets taken at `theta` instead of the base."""
    if shortened(run.obs) is None:
        return run
    offset = offsets(run.obs, run.measured, scales_of(theta, usable), base)
    if offset is None or set(offset) != set(run.offset):
        return run
    return Run(run.obs, run.measured, offset)


def prepare(obs: Observation, base: Calibration | None, usable: float) -> Run | None:
    """The run with its offsets, or None when the simulator cannot make it work."""
    assert obs.metrics is not None
    measured = metric_values(obs.metrics)
    offset = offsets(obs, measured, EngineScales(usable_memory=usable), base)
    return Run(obs, measured, offset) if offset else None

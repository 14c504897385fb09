"""A whole trial in the shadow simulator: its workloads and load searches, predicted and read back.

Place in the data flow: the shadow simulator (`optimizer.shadow`) predicts a trial as the runner
measures it. `simulate_trial` runs the runners' own `measure_workloads` (every workload of the
trial, each with its load search) with one simulated benchmark per request list, so a goodput
trial is predicted by the same load search on the calibrated simulator, and a study with several
workloads gets each workload's metrics. `expected_values` turns such a prediction into the
study's objective values (goodput at the knee, several workloads combined as the study
combines them), for the stored prediction and for screening. After a trial ran,
`measured_runs` reads back what it stored (each workload's metrics and every probe of its load
search) and `observations` makes each request list it measured an `Observation` for the refit (of a
load search: the saturated, knee and lightest loads, `learned_probes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from optuna.trial import FrozenTrial

from optimizer.objectives import TrialValues, trial_values
from optimizer.record import METRICS
from optimizer.spec.models import StudySpec
from optimizer.workload_runs import WORKLOAD_RUNS, StoredRun, read_runs
from runners.errors import CalibrationError
from runners.load_search import measure_workloads
from runners.sim.fit import Observation
from runners.sim.prediction import Prediction
from runners.types import (
    Crash,
    CrashClass,
    Distribution,
    LatencyMetric,
    LoadCurve,
    LoadKnob,
    LoadProbe,
    Metrics,
    ServingConfig,
    TrialOutcome,
    Workload,
    WorkloadRun,
)
from runners.workload import at_load

KNOBS: tuple[LoadKnob, ...] = ("request_rate", "max_concurrency")


def simulate_trial(workload: Workload, once: Callable[[Workload], Prediction]) -> Prediction:
    """The trial on `workload` as the runner measures it, each request list predicted by `once`.

    The spread is the largest of the benchmarks' spreads; with a load search, the search's
    `tolerance` is added in quadrature (the real search stops anywhere within it of the knee).
    The crash probability is the largest of the benchmarks'."""
    calls: list[Prediction] = []

    def measure(plain: Workload) -> TrialOutcome:
        prediction = once(plain)
        calls.append(prediction)
        if prediction.metrics is None:
            crash = Crash(CrashClass.ENGINE_EXITED, "the simulator crashes here", "load")
            return TrialOutcome("crashed", crash=crash)
        return TrialOutcome("ok", metrics=prediction.metrics)

    outcome = measure_workloads(workload, measure).outcome
    searches = [w.load_search for w in (workload, *workload.also) if w.load_search is not None]
    log_sigma = max(c.log_sigma for c in calls)
    if searches:
        log_sigma = math.hypot(log_sigma, max(s.tolerance for s in searches))
    crash_probability = max(c.crash_probability for c in calls)
    if outcome.status != "ok" or outcome.metrics is None:
        return Prediction(None, log_sigma, crash_probability, calls[0].source)
    return Prediction(
        outcome.metrics, log_sigma, crash_probability, calls[0].source, outcome.workloads
    )


def expected_values(prediction: Prediction, spec: StudySpec) -> TrialValues | None:
    """The objective values and SLO constraints the prediction expects, computed as the study
    computes a measured trial's (None: it expects no metrics)."""
    if prediction.metrics is None:
        return None
    expected = TrialOutcome("ok", metrics=prediction.metrics, workloads=prediction.workloads)
    return trial_values(expected, spec)


def measured_runs(trial: FrozenTrial, workload: Workload) -> tuple[WorkloadRun, ...] | None:
    """What a completed trial of `workload` measured, one `WorkloadRun` per workload with its
    load search's every probe (None: it stored no metrics)."""
    flat = trial.user_attrs.get(METRICS)
    if not isinstance(flat, dict):
        return None
    stored = read_runs(trial.user_attrs.get(WORKLOAD_RUNS))
    if not stored:
        return (WorkloadRun(workload.name, metrics_from_flat(flat)),)
    return tuple(_workload_run(run) for run in stored)


def _workload_run(run: StoredRun) -> WorkloadRun:
    curve = None
    if run.probes:
        if run.knob not in KNOBS:
            raise CalibrationError(f"workload {run.name!r} stored an unknown knob {run.knob!r}")
        probes = tuple(
            LoadProbe(p.load, metrics_from_flat(p.metrics), p.broken) for p in run.probes
        )
        curve = LoadCurve(run.knob, probes)
    return WorkloadRun(run.name, metrics_from_flat(run.metrics), curve)


def observations(
    config: ServingConfig, workload: Workload, runs: tuple[WorkloadRun, ...] | None, label: str
) -> tuple[Observation, ...]:
    """Every request list a trial measured as an `Observation`: each workload, or each load of
    its load search that the refit learns from (`learned_probes`); `runs` None (an
    out-of-memory crash): one crash of the first workload."""
    if runs is None:
        return (Observation(config, workload.alone(), None, label),)
    by_name = {each.name: each.alone() for each in (workload, *workload.also)}
    out: list[Observation] = []
    for run in runs:
        plain = by_name.get(run.name)
        if plain is None:
            raise CalibrationError(
                f"{label} measured a workload {run.name!r} that the study does not have"
            )
        if run.curve is None:
            out.append(Observation(config, plain, run.metrics, f"{label} ({run.name})"))
            continue
        for probe in learned_probes(run.curve):
            sent = at_load(plain, run.curve.knob, probe.load)
            where = f"{label} ({run.name} at {_load(probe.load, run.curve.knob)})"
            out.append(Observation(config, sent, probe.metrics, where))
    return tuple(out)


def learned_probes(curve: LoadCurve) -> tuple[LoadProbe, ...]:
    """The probes of a load search the refit learns from: the highest load (the unbounded
    one: the engine saturated), the knee (or the lowest load when none held) and the lowest
    load (light load: the per-step overhead shows), each once, in the order measured.

    The search's other probes are bisection steps within a few tolerances of the knee: they
    repeat what the knee shows, and each costs a simulation at every iteration of every refit
    (a 10-trial goodput study spent three quarters of its time refitting with all of them)."""
    keep = {max(curve.probes, key=lambda p: p.load).load, curve.lowest.load}
    keep.add((curve.knee or curve.lowest).load)
    return tuple(p for p in curve.probes if p.load in keep)


def measured_prediction(runs: tuple[WorkloadRun, ...] | None, label: str) -> Prediction:
    """What a configuration the study ran did, as a prediction with no spread: its measured
    workloads, or a certain crash."""
    if runs is None:
        return Prediction(None, 0.0, 1.0, f"{label}: crashed")
    whole = runs if len(runs) > 1 or runs[0].curve is not None else ()
    return Prediction(runs[0].metrics, 0.0, 0.0, f"{label}: measured", whole)


def _load(load: float, knob: LoadKnob) -> str:
    if math.isinf(load):
        return "unbounded load"
    return f"concurrency {load:g}" if knob == "max_concurrency" else f"{load:.3g} req/s"


LATENCIES: tuple[LatencyMetric, ...] = ("ttft", "tpot", "itl", "e2el")
STATS = ("mean", "median", "std", "p90", "p95", "p99")


def metrics_from_flat(flat: Mapping[str, float]) -> Metrics:
    """The `Metrics` a trial stored with `Metrics.flat` (its ``metrics`` attribute)."""

    def dist(name: str) -> Distribution:
        return Distribution(**{stat: float(flat[f"{stat}_{name}_ms"]) for stat in STATS})

    ttft, tpot, itl, e2el = (dist(name) for name in LATENCIES)
    return Metrics(
        completed=int(flat["completed"]),
        failed=int(flat["failed"]),
        duration_s=float(flat["duration_s"]),
        total_input_tokens=int(flat["total_input_tokens"]),
        total_output_tokens=int(flat["total_output_tokens"]),
        request_throughput_req_s=float(flat["request_throughput_req_s"]),
        output_throughput_tok_s=float(flat["output_throughput_tok_s"]),
        total_token_throughput_tok_s=float(flat["total_token_throughput_tok_s"]),
        num_gpus=int(flat["num_gpus"]),
        ttft_ms=ttft,
        tpot_ms=tpot,
        itl_ms=itl,
        e2el_ms=e2el,
    )


__all__ = [
    "expected_values",
    "learned_probes",
    "measured_prediction",
    "measured_runs",
    "metrics_from_flat",
    "observations",
    "simulate_trial",
]

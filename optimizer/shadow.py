"""The shadow simulator of a real study: fitted on the study's own runs, refitted after each.

Place in the data flow: in a study whose trials run on a real engine or the engine emulator
(``--runner local``, ``ray``, ``emulator``) the loop builds one `ShadowSimulator`. Before each
trial runs, `foretell` predicts it and the loop stores the prediction on the trial
(`optimizer.predicted`); after each trial is told, `refresh` turns every finished runner trial
of the study into an `Observation` (measured metrics, or an out-of-memory crash as a crash
boundary) and refits the calibration with `runners.sim.fit.fit_calibration` when there is
anything new. As a `Predictor` (`predict`) it is what screening scores candidates with in a
real study (`optimizer.predictors.study_predictor`).

What a trial measured is read back from the storage (its stored metrics and parameters), so
trials run by other drivers on the same study, and trials of earlier runs of the study, are
learned from as well. Crashes other than out-of-memory (timeouts, argument errors, a broken
install) say nothing about the four factors the fit corrects and are left out. Runs the fit
cannot explain (`CalibrationError`: the simulator crashes where the engine ran, two runs of one
configuration disagree) are set aside with a note on stderr, and the study goes on with the fit
it had; a poor fit is used, said once on stderr and marked in each stored prediction's source.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from optimizer.config import StudyConfig
from optimizer.objectives import objective_values, trial_workload
from optimizer.predicted import StoredPrediction, store_prediction
from optimizer.record import METRICS, crash_class_of, is_runner_crash
from optimizer.space import candidate_from_params
from optimizer.spec.models import StudySpec
from runners.engines import Resolved, resolve_candidate
from runners.errors import CalibrationError
from runners.sim.fit import CalibrationFit, Observation, fit_calibration, predict
from runners.sim.prediction import Prediction
from runners.types import Distribution, LatencyMetric, Metrics, ServingConfig, Workload

MEMORY_CRASH_PREFIX = "oom:"


def study_shadow(config: StudyConfig, study: optuna.Study) -> ShadowSimulator | None:
    """The shadow simulator of a study whose trials run on a runner other than the simulator,
    fitted on what the study holds already (None: a simulated study, or one it cannot predict;
    the latter says why on stderr)."""
    if config.runner.name == "sim":
        return None
    reason = supports(config.spec)
    if reason is not None:
        if not config.quiet:
            print(f"note: no predictions stored on the trials: {reason}", file=sys.stderr)
        return None
    shadow = ShadowSimulator(config.spec, prior=config.runner.calibration)
    shadow.after_trial(study)
    return shadow


def supports(spec: StudySpec) -> str | None:
    """Why the shadow simulator cannot predict this study's trials (None: it can)."""
    workload = trial_workload(spec)
    if workload.load_search is not None:
        return "a goodput objective (its load search) is not predicted by the shadow simulator"
    if workload.also:
        return "a study with several workloads is not predicted by the shadow simulator"
    return None


@dataclass
class ShadowSimulator:
    """The simulator fitted on one study's runner trials (see the module docstring).

    `prior` is the user's calibration (the space file's ``simulator: {calibration: FILE}``):
    it predicts until the study has runs of its own, and the refits start from it. Not
    thread-safe: the study's driver alone calls it, between trials."""

    spec: StudySpec
    prior: CalibrationFit | None = None
    fit: CalibrationFit | None = None
    observations: dict[int, Observation] = field(default_factory=dict)  # by trial number
    set_aside: dict[int, str] = field(default_factory=dict)  # trials it could not learn: why
    _cache: dict[tuple[ServingConfig, Workload], Prediction] = field(
        default_factory=dict, repr=False
    )

    @property
    def workload(self) -> Workload:
        return trial_workload(self.spec)

    @property
    def n_runs(self) -> int:
        return self.fit.n_runs if self.fit is not None else 0

    def refresh(self, trials: Sequence[FrozenTrial]) -> bool:
        """Learn every finished runner trial not seen yet; refit if any. Whether it refitted."""
        new = {
            t.number: obs
            for t in trials
            if t.number not in self.observations and t.number not in self.set_aside
            for obs in [self._observation(t)]
            if obs is not None
        }
        if not new:
            return False
        learned = {**self.observations, **new}
        try:
            fit = fit_calibration(
                [learned[n] for n in sorted(learned)],
                self.prior.calibration if self.prior is not None else None,
            )
        except CalibrationError as exc:
            # the simulator cannot explain these runs (it crashes where the engine ran, or two
            # runs of one configuration disagree): they are set aside, said once, and the
            # study goes on with the fit it had
            self.set_aside.update(dict.fromkeys(new, str(exc)))
            print(
                f"note: the shadow simulator did not learn from {_trials(new)}: {exc}",
                file=sys.stderr,
            )
            return False
        self.observations = learned
        if fit.poor and (self.fit is None or not self.fit.poor):
            print(f"note: the shadow simulator's fit is poor: {fit.note}", file=sys.stderr)
        self.fit = fit
        self._cache.clear()
        return True

    def predict(self, config: ServingConfig, workload: Workload) -> Prediction:
        """The Predictor protocol, for screening: a configuration the study has run already is
        its measurement, with no spread (running it again cannot move the front); any other
        is the simulator with the current fit (none yet: the user's calibration, or as
        shipped)."""
        if workload == self.workload:
            for observation in self.observations.values():
                if observation.config == config:
                    return _measured(observation)
        return self._simulated(config, workload)

    def _simulated(self, config: ServingConfig, workload: Workload) -> Prediction:
        """The simulator's prediction with the current fit (cached until the next refit)."""
        cached = self._cache.get((config, workload))
        if cached is None:
            cached = predict(config, workload, self.fit or self.prior, seed=workload.seed)
            self._cache[(config, workload)] = cached
        return cached

    def foretell(self, config: ServingConfig) -> StoredPrediction:
        """What the trial of `config` is expected to measure, in the study's objectives: always
        the simulator's own prediction, even for a configuration run before, so the stored
        predictions say how good the simulator is."""
        prediction = self._simulated(config, self.workload)
        values = (
            objective_values(prediction.metrics, self.spec.objectives)
            if prediction.metrics is not None
            else None
        )
        return StoredPrediction(
            throughput=values[0] if values else None,
            latency=values[1] if values else None,
            log_sigma=prediction.log_sigma,
            crash_probability=prediction.crash_probability,
            n_runs=self.n_runs,
            source=prediction.source + (" (poor fit)" if self.fit and self.fit.poor else ""),
        )

    def before_trial(self, trial: optuna.Trial, resolved: Resolved) -> None:
        """Store the prediction of a trial about to run (one the engine refuses: none)."""
        if resolved.config is not None:
            store_prediction(trial, self.foretell(resolved.config))

    def after_trial(self, study: optuna.Study) -> None:
        """Learn the trials that finished since the last call (this driver's and others')."""
        self.refresh(study.get_trials(deepcopy=False))

    def _observation(self, trial: FrozenTrial) -> Observation | None:
        measured = trial.state == TrialState.COMPLETE and isinstance(
            trial.user_attrs.get(METRICS), dict
        )
        memory_crash = is_runner_crash(trial) and crash_class_of(trial).startswith(
            MEMORY_CRASH_PREFIX
        )
        if not (measured or memory_crash):
            return None
        resolved = resolve_candidate(
            candidate_from_params(self.spec, trial.params), self.spec.node_group
        )
        if resolved.config is None:  # the engine refuses it: nothing it ran to learn from
            return None
        metrics = metrics_from_flat(trial.user_attrs[METRICS]) if measured else None
        return Observation(
            config=resolved.config,
            workload=self.workload,
            metrics=metrics,
            label=f"trial {trial.number}",
        )


def _trials(numbers: Mapping[int, object]) -> str:
    return "trial " + ", ".join(str(n) for n in sorted(numbers))


def _measured(observation: Observation) -> Prediction:
    """What a configuration the study ran did: its metrics, or a certain crash."""
    if observation.metrics is None:
        return Prediction(None, 0.0, 1.0, f"{observation.label}: crashed")
    return Prediction(observation.metrics, 0.0, 0.0, f"{observation.label}: measured")


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
    "MEMORY_CRASH_PREFIX",
    "ShadowSimulator",
    "metrics_from_flat",
    "study_shadow",
    "supports",
]

"""The shadow simulator of a real study: fitted on the study's own runs, refitted after each.

Place in the data flow: in a study whose trials run on a real engine or the engine emulator
(``--runner local``, ``ray``, ``emulator``) the loop builds one `ShadowSimulator`. Before each
trial runs, `foretell` predicts it and the loop stores the prediction on the trial
(`optimizer.predicted`); after each trial is told, `refresh` turns every finished runner trial
of the study into `Observation`s (one per request list it measured: each workload, each load
of a goodput load search; or an out-of-memory crash as a crash boundary) and refits the
calibration with `runners.sim.fit.fit_calibration` when there is anything new. A trial is
predicted whole (`optimizer.shadow_trial`): every workload, each load search run on the
calibrated simulator as the runner runs it, the objective values computed as the study
computes them. As a `Predictor` (`predict`) it is what screening scores candidates with in a
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
from optimizer.objectives import trial_workload
from optimizer.predicted import StoredPrediction, store_prediction
from optimizer.record import METRICS, crash_class_of, is_runner_crash
from optimizer.shadow_trial import (
    expected_values,
    measured_prediction,
    measured_runs,
    metrics_from_flat,
    observations,
    simulate_trial,
)
from optimizer.space import candidate_from_params
from optimizer.spec.models import StudySpec
from runners.engines import Resolved, resolve_candidate
from runners.errors import CalibrationError
from runners.sim.fit import CalibrationFit, Observation, fit_calibration, predict
from runners.sim.prediction import Prediction
from runners.types import ServingConfig, Workload

MEMORY_CRASH_PREFIX = "oom:"


def study_shadow(config: StudyConfig, study: optuna.Study) -> ShadowSimulator | None:
    """The shadow simulator of a study whose trials run on a runner other than the simulator,
    fitted on what the study holds already (None: a simulated study)."""
    if config.runner.name == "sim":
        return None
    shadow = ShadowSimulator(config.spec, prior=config.runner.calibration)
    shadow.after_trial(study)
    return shadow


@dataclass(frozen=True)
class Learned:
    """One finished runner trial as the shadow simulator learned it: the configuration, every
    request list it measured (or its crash) and what it did as a prediction with no spread."""

    config: ServingConfig
    observations: tuple[Observation, ...]
    measured: Prediction


@dataclass
class ShadowSimulator:
    """The simulator fitted on one study's runner trials (see the module docstring).

    `prior` is the user's calibration (the space file's ``simulator: {calibration: FILE}``):
    it predicts until the study has runs of its own, and the refits start from it. Not
    thread-safe: the study's driver alone calls it, between trials."""

    spec: StudySpec
    prior: CalibrationFit | None = None
    fit: CalibrationFit | None = None
    learned: dict[int, Learned] = field(default_factory=dict)  # by trial number
    set_aside: dict[int, str] = field(default_factory=dict)  # trials it could not learn: why
    _cache: dict[tuple[ServingConfig, Workload], Prediction] = field(
        default_factory=dict, repr=False
    )

    @property
    def workload(self) -> Workload:
        return trial_workload(self.spec)

    @property
    def n_runs(self) -> int:
        """The study's trials the current fit learned from (a trial with a load search or
        several workloads is one, however many benchmarks it ran)."""
        return len(self.learned) if self.fit is not None else 0

    def refresh(self, trials: Sequence[FrozenTrial]) -> bool:
        """Learn every finished runner trial not seen yet; refit if any. Whether it refitted."""
        new: dict[int, Learned] = {}
        for trial in trials:
            if trial.number in self.learned or trial.number in self.set_aside:
                continue
            try:
                learned = self._learned(trial)
            except CalibrationError as exc:
                self.set_aside[trial.number] = str(exc)
                print(f"note: the shadow simulator did not learn from {exc}", file=sys.stderr)
                continue
            if learned is not None:
                new[trial.number] = learned
        if not new:
            return False
        every = {**self.learned, **new}
        try:
            fit = fit_calibration(
                [obs for n in sorted(every) for obs in every[n].observations],
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
        self.learned = every
        if fit.poor and (self.fit is None or not self.fit.poor):
            print(f"note: the shadow simulator's fit is poor: {fit.note}", file=sys.stderr)
        self.fit = fit
        self._cache.clear()
        return True

    def predict(self, config: ServingConfig, workload: Workload) -> Prediction:
        """The Predictor protocol, for screening: a configuration the study has run already is
        its measurement, with no spread (running it again cannot move the front); any other
        is the simulator with the current fit (none yet: the user's calibration, or as
        shipped), every workload and load search of the trial included."""
        if workload == self.workload:
            for learned in self.learned.values():
                if learned.config == config:
                    return learned.measured
        return self._simulated(config, workload)

    def _simulated(self, config: ServingConfig, workload: Workload) -> Prediction:
        """The simulator's prediction with the current fit (cached until the next refit)."""
        cached = self._cache.get((config, workload))
        if cached is None:
            fit = self.fit or self.prior
            cached = simulate_trial(
                workload, lambda plain: predict(config, plain, fit, seed=plain.seed)
            )
            self._cache[(config, workload)] = cached
        return cached

    def foretell(self, config: ServingConfig) -> StoredPrediction:
        """What the trial of `config` is expected to measure, in the study's objectives (with a
        goodput objective, the goodput at the knee of the simulated load search; with several
        workloads, their values combined as the study combines them, and each workload's):
        always the simulator's own prediction, even for a configuration run before, so the
        stored predictions say how good the simulator is."""
        prediction = self._simulated(config, self.workload)
        worth = expected_values(prediction, self.spec)
        each = (
            tuple((run.name, *run.values) for run in worth.runs)
            if worth is not None and len(worth.runs) > 1
            else ()
        )
        return StoredPrediction(
            throughput=worth.values[0] if worth else None,
            latency=worth.values[1] if worth else None,
            log_sigma=prediction.log_sigma,
            crash_probability=prediction.crash_probability,
            n_runs=self.n_runs,
            source=self._source(prediction),
            workloads=each,
        )

    def _source(self, prediction: Prediction) -> str:
        """Which simulator predicted: with a fit, the study's trials it learned from (a trial
        with a load search or several workloads is one, not each benchmark it ran)."""
        if self.fit is None:
            return prediction.source
        n = self.n_runs
        return f"calibrated on {n} trial{'s' if n != 1 else ''}" + (
            " (poor fit)" if self.fit.poor else ""
        )

    def before_trial(self, trial: optuna.Trial, resolved: Resolved) -> None:
        """Store the prediction of a trial about to run (one the engine refuses: none)."""
        if resolved.config is not None:
            store_prediction(trial, self.foretell(resolved.config))

    def after_trial(self, study: optuna.Study) -> None:
        """Learn the trials that finished since the last call (this driver's and others')."""
        self.refresh(study.get_trials(deepcopy=False))

    def _learned(self, trial: FrozenTrial) -> Learned | None:
        """A completed trial's measurements, or an out-of-memory crash as a crash boundary
        (None: nothing to learn from it). Raises CalibrationError for a trial whose stored
        measurements the study cannot read back."""
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
        label = f"trial {trial.number}"
        try:
            runs = measured_runs(trial, self.workload) if measured else None
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{label}: its stored metrics are incomplete ({exc})") from exc
        return Learned(
            resolved.config,
            observations(resolved.config, self.workload, runs, label),
            measured_prediction(runs, label),
        )


def _trials(numbers: Mapping[int, object]) -> str:
    return "trial " + ", ".join(str(n) for n in sorted(numbers))


__all__ = [
    "MEMORY_CRASH_PREFIX",
    "Learned",
    "ShadowSimulator",
    "metrics_from_flat",
    "study_shadow",
]

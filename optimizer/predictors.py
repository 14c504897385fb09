"""Predictors: what a study expects of a configuration before it runs it.

Place in the data flow: `study_predictor` picks the predictor of a study once per run; the
screening (`optimizer.screening`) asks it for a `Prediction` of every candidate the sampler
proposes and runs the one worth most. A simulated study's predictor is the simulator itself,
with the study's own workload and noise model: its log-sigma is the noise level (0 without
noise) and a simulated crash is certain (crash probability 1). Every benchmark the predictor
simulates is kept in a `SimCache` that the loop hands to the trial's `SimRunner`
(`SimPredictor.share_with`), so the chosen candidate's trial simulates nothing again. On
request (`coarse_ranking`, not the default: it found less in the benchmark) a goodput
candidate is ranked by a coarse load search (`runners.load_search.coarse`). A real study's
predictor is its shadow simulator (`optimizer.shadow`), built by the loop and handed in.
"""

from __future__ import annotations

import math
from typing import Protocol

from optimizer.config import StudyConfig
from runners.load_search import RANKING_TOLERANCE, coarse
from runners.sim import Noise
from runners.sim.fit import CalibrationFit
from runners.sim.prediction import Prediction
from runners.sim.runner import SimRunner
from runners.sim.sim_cache import SimCache
from runners.types import ServingConfig, TrialOutcome, Workload


class Predictor(Protocol):
    """Turns a resolved configuration and the trial's workload into a `Prediction`.

    Pure as far as the study is concerned: nothing is stored, nothing is launched, and the same
    input gives the same prediction within one study run.
    """

    def predict(self, config: ServingConfig, workload: Workload) -> Prediction: ...


class SimPredictor:
    """The embedded simulator as a predictor: the outcome the simulated trial would have
    (`coarse_ranking`: with its load searches coarse, `coarse`, the knee within 25%).
    `cache` holds every benchmark it simulated (`share_with` hands it to the trials' runner)."""

    def __init__(
        self,
        noise: Noise | None = None,
        calibration: CalibrationFit | None = None,
        coarse_ranking: bool = False,
    ) -> None:
        self.coarse_ranking = coarse_ranking
        self.cache = SimCache(noise, calibration)
        self._runner = SimRunner(noise=noise, calibration=calibration, cache=self.cache)
        self._log_sigma = noise.run_sigma if noise is not None else 0.0
        self._seen: dict[tuple[ServingConfig, Workload], TrialOutcome] = {}
        self.simulations = 0  # how many configurations were simulated (each once)

    def outcome(self, config: ServingConfig, workload: Workload) -> TrialOutcome:
        """The simulated trial's outcome (with `coarse_ranking`, its load searches coarse),
        simulated once per configuration and workload (the simulation is
        deterministic for the workload's seed, noise draw included, so a proposal the sampler
        repeats costs nothing)."""
        key = (config, workload)
        if key not in self._seen:
            ranked = coarse(workload) if self.coarse_ranking else workload
            self._seen[key] = self._runner.simulate_config(config, ranked)
            self.simulations += 1
        return self._seen[key]

    def predict(self, config: ServingConfig, workload: Workload) -> Prediction:
        """The simulated outcome as a prediction: its metrics, or a certain crash. With a coarse
        load search, the coarse knee's shortfall (up to `RANKING_TOLERANCE` below the full
        search's) widens the spread by half that tolerance, in quadrature with the noise: a
        candidate ranked a little below the best goodput may still beat it, so it keeps some
        worth (and its place in the pool) instead of scoring 0 for good."""
        outcome = self.outcome(config, workload)
        log_sigma = self._log_sigma
        searched = any(w.load_search is not None for w in (workload, *workload.also))
        if self.coarse_ranking and searched:
            log_sigma = math.hypot(log_sigma, RANKING_TOLERANCE / 2)
        if outcome.status != "ok" or outcome.metrics is None:
            return Prediction(None, log_sigma, 1.0, "simulator")
        return Prediction(outcome.metrics, log_sigma, 0.0, "simulator", outcome.workloads)

    def share_with(self, runner: SimRunner) -> bool:
        """Hand the cache to the runner of the study's trials, so a trial reads back the
        benchmarks its prediction simulated; False (nothing handed) when the runner simulates
        with another noise model or calibration (its benchmarks would differ) or has a truth
        profile."""
        if runner.profile is not None or not self.cache.fits(runner.noise, runner.calibration):
            return False
        runner.cache = self.cache
        return True


def study_predictor(config: StudyConfig, shadow: Predictor | None = None) -> Predictor | None:
    """The predictor that screens this study's candidates; None: no screening.

    Simulated studies (``--runner sim``) screen with the simulator itself. Real runners (local,
    emulator, Ray) screen with the study's `shadow` simulator (`optimizer.shadow`: the
    simulator refitted on the study's own runs); None when the study has none.
    """
    if not config.screening or config.sampler == "grid":
        return None
    if config.runner.name == "sim":
        # the trials' own simulator, with the space file's calibration when it names one
        noise = Noise.typical() if config.runner.noise else None
        return SimPredictor(noise, config.runner.calibration)
    return shadow


__all__ = ["Predictor", "SimPredictor", "study_predictor"]

"""Sampler factory and the lattice behind `--sampler grid`; the only place sampler options live.

`make_sampler` builds TPE (multivariate, grouped for conditional spaces, constant liar for
trials in flight: the default), NSGA-II, GP (only when PyTorch is installed), random, or the
random sampler that backs the grid. Constraints recorded with `trial.set_constraint` reach every
one of them through Optuna 5's trial system attributes.

A conditional space has no fixed Cartesian grid (Optuna's GridSampler needs one), so
`GridPlan` walks a coarse lattice of it instead: every categorical and bool value, a few
levels per numeric range, conditions respected, points drawn in a seeded random order without
replacement (as GridSampler does) and enqueued one at a time by the loop (optimizer.enqueue).
"""

from __future__ import annotations

import copy
import importlib.util
import random
import warnings
from collections.abc import Iterable, Mapping
from typing import cast

import numpy as np
import optuna

from optimizer.errors import SamplerError
from optimizer.space import ENGINE_PARAM, VARIANT_PARAM, Walk
from optimizer.spec.models import (
    BoolParam,
    CategoricalParam,
    FloatParam,
    IntParam,
    SamplerName,
    StudySpec,
)
from runners.types import SettingValue

SAMPLERS: tuple[SamplerName, ...] = ("tpe", "nsga2", "gp", "random", "grid")
NSGA2_POPULATION = 16
TPE_STARTUP_TRIALS = 5  # after the baseline and engine anchors; see README search figures


def make_sampler(name: SamplerName, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return SnapshotTPESampler(
                multivariate=True,
                group=True,
                constant_liar=True,
                n_startup_trials=TPE_STARTUP_TRIALS,
                seed=seed,
            )
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=NSGA2_POPULATION, seed=seed)
        if name == "gp":
            if importlib.util.find_spec("torch") is None:
                raise SamplerError(
                    "--sampler gp needs PyTorch, which is not installed; install the CPU build "
                    "(pip install torch; on these machines pip install torch==2.13.0 takes the "
                    "local wheel) or use --sampler tpe"
                )
            # GP models one fixed search space; conditional settings outside it are sampled at
            # random (Optuna's documented fallback), so the per-parameter warning is noise here.
            return optuna.samplers.GPSampler(
                seed=seed, deterministic_objective=True, warn_independent_sampling=False
            )
        return optuna.samplers.RandomSampler(seed=seed)


class _TrialsSnapshot:
    """A study seen through one read of its trials; everything else goes to the real study.

    With constant liar, TPE reads every trial from storage afresh for each group of a grouped
    (conditional) space: about a dozen full reads per trial on our spaces, most of the driver's
    sampling time. One read per `sample_relative` call is as current as the sampler needs: the
    trials it proposes against are the ones that exist when the trial is asked.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._trials = study._get_trials(deepcopy=False, use_cache=False)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Iterable[optuna.trial.TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[optuna.trial.FrozenTrial]:
        del use_cache  # always the snapshot
        wanted = None if states is None else set(states)
        trials = [t for t in self._trials if wanted is None or t.state in wanted]
        return copy.deepcopy(trials) if deepcopy else trials

    def __getattr__(self, name: str) -> object:
        return getattr(self._study, name)


class SnapshotTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE, reading the study's trials once per relative sample (`_TrialsSnapshot`)."""

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, object]:
        snapshot = cast(optuna.Study, _TrialsSnapshot(study))
        return super().sample_relative(snapshot, trial, search_space)


Params = dict[str, SettingValue]


def _levels(param: IntParam | FloatParam | CategoricalParam | BoolParam) -> list[SettingValue]:
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, BoolParam):
        return [True, False]
    if isinstance(param, IntParam):
        raw = (
            np.geomspace(param.low, param.high, 4)
            if param.log
            else np.linspace(param.low, param.high, 4)
        )
        snapped = {int(param.low + round((v - param.low) / param.step) * param.step) for v in raw}
        return sorted(min(max(v, param.low), param.high) for v in snapped)
    points = (
        np.geomspace(param.low, param.high, 3)
        if param.log
        else np.linspace(param.low, param.high, 3)
    )
    if param.step is not None:
        step = param.step
        points = np.array([param.low + round((p - param.low) / step) * step for p in points])
    return sorted({round(float(p), 10) for p in points})


class GridPlan:
    """Seeded random walk over a coarse lattice of a conditional space, without repeats."""

    def __init__(self, spec: StudySpec, seed: int, max_draws: int = 2000) -> None:
        self._spec = spec
        self._rng = random.Random(seed)
        self._max_draws = max_draws

    def _draw(self) -> Params:
        spec = self._spec
        engine = self._rng.choice(list(spec.engines))
        variant = self._rng.choice(list(spec.model.variants))
        walk = Walk(spec, engine)
        for slot in walk:
            walk.choose(slot, self._rng.choice(_levels(slot.alt)))
        return {ENGINE_PARAM: engine, VARIANT_PARAM: variant, **walk.params}

    def next_point(self, visited: Iterable[Mapping[str, SettingValue]]) -> Params | None:
        """An unvisited lattice point, or None when none was found (lattice exhausted)."""
        seen = {_key(p) for p in visited}
        for _ in range(self._max_draws):
            point = self._draw()
            if _key(point) not in seen:
                return point
        return None


def _key(params: Mapping[str, SettingValue]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))

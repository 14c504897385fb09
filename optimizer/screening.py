"""Screening: the sampler proposes K candidates, a predictor scores them, the best one runs.

Place in the data flow: the loop (`optimizer.loop`) calls `Screen.enqueue_best` when nothing
else waits, just before it asks the study for the next trial. The sampler proposes on a
throw-away in-memory copy of the study (every stored trial copied in, the K proposals left
RUNNING so that TPE's constant liar spreads them), so the stored study only ever holds the
trials that really ran. Each proposal is resolved once, pre-flight checked against the stored
history (a rejected one is never chosen; a launched one carries pre-flight's crash probability
when that is larger than the predictor's) and predicted (`optimizer.predictors`). Its worth:

- two objectives: the expected hypervolume improvement over the current feasible front, by
  Monte Carlo over the prediction's log-sigma (throughput and latency each drawn lognormal,
  the same draws for every candidate), times 1 - crash probability;
- goodput (`objectives.goodput`): the expected gain over the best goodput so far, the same way.

A prediction that breaks an SLO is worth 0, and so is a configuration the study has completed
already (or runs now, on another worker), whatever its predictor says: running it again cannot
move the front (only its noise could, and a noise draw is not an improvement; a predictor with
a spread, such as the noisy simulator of a simulated study, would otherwise score a front point
positive because the draws around it add area). The best candidate is enqueued (marked with
how many candidates it beat and its expected gain) and the loop's ask takes it. When no
candidate is worth anything, the sampler's first launchable proposal that the study has not
run yet runs (its first launchable one when it has run them all), as without screening.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from optimizer.extremes import EndSweep, ends_of
from optimizer.feasibility import FeasibilityChecker
from optimizer.local_moves import Neighbour, front_trials, local_move
from optimizer.predictors import Predictor, SimPredictor
from optimizer.report.hypervolume import Point, feasible_points, hypervolume_2d
from optimizer.samplers import make_sampler
from optimizer.screening_pool import CandidatePool, learned_trial
from optimizer.shadow_trial import expected_values
from optimizer.space import suggest
from optimizer.spec.models import SamplerName, StudySpec
from runners.engines import Resolved, resolve_candidate
from runners.sim.prediction import Prediction
from runners.types import Candidate, ServingConfig, TrialOutcome, Workload

SCREENED = "screened"
"""User attribute of a screened trial: {"candidates": K, "expected_gain": score}."""
DEFAULT_CANDIDATES = 32
MC_DRAWS = 64
LOCAL_SHARE = 0.5
"""Share of a pooled (simulated) study's K proposals that are local moves around the front
(`optimizer.local_moves`) once it has a point; the rest come from the sampler."""
SWEEP_SHARE = 0.75
"""Share of the K proposals that are local moves while a neighbour of an end of the front is
untried (`optimizer.extremes`): a swept neighbour costs its simulation and no sampler fit."""
REF_LATENCY_MARGIN = 1.1


def params_key(params: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """A trial's parameters as a comparable key (values by repr: 1 and 1.0 differ, as in a
    space file's choices)."""
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


def taken_keys(trials: Sequence[FrozenTrial]) -> set[tuple[tuple[str, str], ...]]:
    """The parameters of every trial that completed (measured, whatever its SLOs said) or is
    running now (another worker's trial in flight: a second run of it would measure nothing
    new)."""
    return {
        params_key(dict(t.params))
        for t in trials
        if (t.state == TrialState.COMPLETE and t.values) or t.state == TrialState.RUNNING
    }


def predicted_point(prediction: Prediction, spec: StudySpec) -> Point | None:
    """The objective values the prediction expects (goodput at the knee, several workloads
    combined: as the study computes them), None when it breaks an SLO or crashes."""
    worth = expected_values(prediction, spec)
    if worth is None or prediction.crash_probability >= 1.0:
        return None
    if any(v > 0 for v in worth.constraints.values()):
        return None
    return worth.values


def draws(n: int = MC_DRAWS, seed: int = 0) -> np.ndarray:
    """Standard normal pairs shared by every candidate (common random numbers)."""
    return np.random.default_rng(seed).standard_normal((n, 2))


def expected_hv_gain(
    point: Point | None,
    log_sigma: float,
    crash_probability: float,
    front: Sequence[Point],
    ref: Point,
    z: np.ndarray,
) -> float:
    """E[HV(front + point) - HV(front)] over the prediction's spread, times 1 - P(crash)."""
    if point is None or crash_probability >= 1.0:
        return 0.0
    base = hypervolume_2d(front, ref)
    samples = [point] if log_sigma == 0.0 else _spread(point, log_sigma, z)
    gain = sum(hypervolume_2d([*front, s], ref) - base for s in samples) / len(samples)
    return (1.0 - crash_probability) * max(0.0, gain)


def expected_goodput_gain(
    goodput: float | None,
    log_sigma: float,
    crash_probability: float,
    best: float,
    z: np.ndarray,
) -> float:
    """E[max(0, goodput - best)] over the prediction's spread, times 1 - P(crash)."""
    if goodput is None or crash_probability >= 1.0:
        return 0.0
    samples = (
        [goodput] if log_sigma == 0.0 else [goodput * math.exp(log_sigma * a) for a in z[:, 0]]
    )
    gain = sum(max(0.0, s - best) for s in samples) / len(samples)
    return (1.0 - crash_probability) * gain


def _spread(point: Point, log_sigma: float, z: np.ndarray) -> list[Point]:
    return [(point[0] * math.exp(log_sigma * a), point[1] * math.exp(log_sigma * b)) for a, b in z]


def with_crash_odds(prediction: Prediction, odds: float) -> Prediction:
    """The prediction with pre-flight's crash probability when that is the larger: pre-flight
    knows what the predictor may not (the crash model learned from this study's own crashes,
    the memory model near its boundary), and a launched proposal carries its odds."""
    if odds <= prediction.crash_probability:
        return prediction
    return dataclasses.replace(prediction, crash_probability=odds)


@dataclass(frozen=True)
class Scored:
    """One proposal: its parameters, what was predicted, and what it is worth."""

    params: dict[str, object]
    prediction: Prediction | None  # None: rejected by pre-flight (never chosen)
    point: Point | None
    score: float = 0.0
    ran: bool = False  # the study has completed it, or runs it now (worth 0)


def score_all(
    candidates: list[Scored], spec: StudySpec, history: Sequence[FrozenTrial]
) -> list[Scored]:
    """Each launchable candidate with its expected gain over the stored study's best."""
    z = draws()
    front = feasible_points(history)
    done = taken_keys(history)
    candidates = [
        dataclasses.replace(c, ran=True) if params_key(c.params) in done else c for c in candidates
    ]
    out: list[Scored] = []
    if spec.objectives.goodput is not None:
        best = max((p[0] for p in front), default=0.0)
        for c in candidates:
            if c.prediction is None or c.ran:
                out.append(c)
                continue
            g = c.point[0] if c.point is not None else None
            p = c.prediction
            score = expected_goodput_gain(g, p.log_sigma, p.crash_probability, best, z)
            out.append(dataclasses.replace(c, score=score))
        return out
    latencies = [p[1] for p in front] + [c.point[1] for c in candidates if c.point is not None]
    ref = (0.0, REF_LATENCY_MARGIN * max(latencies, default=1.0))
    for c in candidates:
        if c.prediction is None or c.ran:
            out.append(c)
            continue
        p = c.prediction
        score = expected_hv_gain(c.point, p.log_sigma, p.crash_probability, front, ref, z)
        out.append(dataclasses.replace(c, score=score))
    return out


def choose(scored: Sequence[Scored]) -> Scored | None:
    """The launchable candidate worth most; when none is worth anything, the first launchable
    one not run yet (the sampler's own pick), else the first launchable; None when pre-flight
    rejects them all."""
    launchable = [c for c in scored if c.prediction is not None]
    if not launchable:
        return None
    best = max(launchable, key=lambda c: c.score)  # max keeps the first of equals
    if best.score > 0:
        return best
    return next((c for c in launchable if not c.ran), launchable[0])


@dataclass
class Screen:
    """Screening of one study run: its predictor, sampler kind, K and pre-flight.

    With the simulator as predictor (a simulated study) every simulated proposal is kept in a
    pool (`optimizer.screening_pool`): later rounds score it again and the sampler learns from
    it, and no configuration is simulated twice; its local moves sweep the one-setting
    neighbours of the front's ends first (`optimizer.extremes`; not in a goodput study). Other
    predictors (the shadow simulator of a real study, refitted after every trial) are asked
    afresh each round.
    """

    spec: StudySpec
    predictor: Predictor
    workload: Workload
    sampler: SamplerName
    seed: int
    candidates: int = DEFAULT_CANDIDATES
    checker: FeasibilityChecker | None = None
    pool: CandidatePool[Scored] | None = None
    local_share: float = LOCAL_SHARE
    sweep: EndSweep | None = None
    ends: list[FrozenTrial] = dataclasses.field(default_factory=list)  # as last proposed on
    front_ends: int = 0  # how many of `ends` are the front's own (the first ones)

    def __post_init__(self) -> None:
        if self.pool is None and isinstance(self.predictor, SimPredictor):
            self.pool = CandidatePool()
        if self.pool is not None and self.sweep is None and self.spec.objectives.goodput is None:
            # a goodput candidate is a whole load search: sweeping cost more trials than it
            # found (measured: 14 stored trials in 60 s instead of about 30)
            self.sweep = EndSweep(self.seed)

    def unswept(self) -> int:
        """How many one-setting neighbours of the front's two ends are still untried (0
        without a pool: real studies do not sweep). The engines' own best points are swept
        too but do not hold the stop: the front's ends are what it is judged on."""
        if self.sweep is None:
            return 0
        return self.sweep.pending(self.ends[: self.front_ends])

    def propose(self, study: optuna.Study) -> tuple[list[Scored], list[FrozenTrial]]:
        """K proposals of the study's sampler on an in-memory copy, resolved and predicted
        (with a pool: the new ones only; a proposal already pooled is not predicted again)."""
        history = study.get_trials(deepcopy=False)
        copy = optuna.create_study(
            directions=study.directions,
            sampler=make_sampler(self.sampler, self.seed + len(history)),
        )
        pool = self.pool
        known = (
            pool.trials(history, trial_key)
            if pool is not None
            else [t for t in history if t.state != TrialState.WAITING]
        )
        copy.add_trials(known)
        front = front_trials(known) if pool is not None else []
        self.ends = ends_of(known) if pool is not None else []
        self.front_ends = min(len(front), 2)
        swept = self.sweep is None or self.sweep.pending(self.ends) == 0
        share = self.local_share if swept else SWEEP_SHARE
        local = int(self.candidates * share) if front else 0
        rng = random.Random(self.seed + len(history))
        proposals: list[Scored] = []
        for index in range(self.candidates):
            if index < self.candidates - local:
                trial = copy.ask()
                candidate = suggest(trial, self.spec)
                params, distributions = dict(trial.params), trial.distributions
            else:
                candidate, move = self._local(front, rng)
                params, distributions = move.params, move.distributions
            resolved = resolve_candidate(candidate, self.spec.node_group)
            key = params_key(params)
            if pool is not None and key in pool:
                continue  # simulated in an earlier round: the pool scores it
            scored = self._predict(resolved, params, distributions, history)
            proposals.append(scored)
            if pool is not None:
                outcome = None
                if scored.prediction is not None and resolved.config is not None:
                    outcome = self._outcome(resolved.config)
                learned = learned_trial(params, distributions, outcome, self.spec)
                pool.add(key, scored if scored.prediction is not None else None, learned)
        return proposals, history

    def _local(self, front: list[FrozenTrial], rng: random.Random) -> tuple[Candidate, Neighbour]:
        """The next untried neighbour of an end of the front (`optimizer.extremes`); once
        both ends are swept, a random local move (`optimizer.local_moves`)."""
        pool = self.pool
        if self.sweep is not None and pool is not None:
            swept = self.sweep.next_move(
                self.spec, self.ends, lambda key: key in pool, params_key, rng
            )
            if swept is not None:
                return swept
        return local_move(self.spec, front, rng)

    def _predict(
        self,
        resolved: Resolved,
        params: dict[str, object],
        distributions: dict[str, BaseDistribution],
        history: list[FrozenTrial],
    ) -> Scored:
        """One proposal pre-flight checked and predicted (not yet scored)."""
        odds = 0.0  # pre-flight's crash probability of a launchable proposal
        if self.checker is not None:
            verdict = self.checker.check(resolved, params, distributions, history)
            if not verdict.launch:
                return Scored(params, None, None)
            odds = verdict.crash_probability or 0.0
        config = resolved.config
        if config is None:  # the engine refuses it: no pre-flight to say so
            return Scored(params, Prediction(None, 0.0, 1.0, "engine argument check"), None)
        prediction = with_crash_odds(self.predictor.predict(config, self.workload), odds)
        return Scored(params, prediction, predicted_point(prediction, self.spec))

    def _outcome(self, config: ServingConfig) -> TrialOutcome | None:
        if isinstance(self.predictor, SimPredictor):
            return self.predictor.outcome(config, self.workload)
        return None

    def enqueue_best(self, study: optuna.Study) -> Scored | None:
        """Enqueue the best of K proposals and the pool (None, nothing enqueued: all were
        rejected)."""
        proposals, history = self.propose(study)
        fresh = {params_key(c.params) for c in proposals}
        pooled = (
            [c for c in self.pool.candidates() if params_key(c.params) not in fresh]
            if self.pool is not None
            else []
        )
        scored = score_all([*proposals, *pooled], self.spec, history)
        if self.pool is not None:
            self.pool.drop(params_key(c.params) for c in scored if worthless_for_good(c))
        best = choose(scored)
        if best is not None:
            attrs = {
                SCREENED: {
                    "candidates": self.candidates,
                    "pooled": len(pooled),
                    "expected_gain": best.score,
                }
            }
            study.enqueue_trial(best.params, user_attrs=attrs, skip_if_exists=False)
        return best


def worthless_for_good(candidate: Scored) -> bool:
    """Worth nothing now and never again: run already, crashed or breaking an SLO, or (without
    a spread) dominated by the front, which only grows."""
    if candidate.ran or candidate.point is None:
        return True
    spread = candidate.prediction.log_sigma if candidate.prediction is not None else 0.0
    return candidate.score <= 0.0 and spread == 0.0


def trial_key(trial: FrozenTrial) -> tuple[tuple[str, str], ...]:
    return params_key(dict(trial.params))


__all__ = [
    "DEFAULT_CANDIDATES",
    "SCREENED",
    "Scored",
    "Screen",
    "choose",
    "expected_goodput_gain",
    "expected_hv_gain",
    "feasible_points",
    "params_key",
    "predicted_point",
    "score_all",
    "taken_keys",
    "with_crash_odds",
]

"""Local moves: proposals one or two settings away from a point of the current front.

Place in the data flow: the screening of a simulated study (`optimizer.screening`) takes part of
its K proposals from here once the front holds a point, the rest from the sampler. A move costs
no sampler fit (TPE refits for every proposal), and in the discrete spaces of serving settings
a front that has the rough shape is finished by changing one setting at a time: a neighbour
of a front point is often the point just beyond it.

A move starts from a front trial's parameters (one of the non-dominated feasible trials the
sampler's copy holds, stored or pooled; one of the front's two ends half the time), picks one
of its parameters (two, one time in four) and gives it another allowed value: a step of an int
(x or / about 1.5 on a log range; one time in two, any value of its range), a scaled float,
another choice of a categorical. Parameters the moved point needs and the base lacks (after the
engine changed) are drawn at random. The same `optimizer.space.suggest` walk fills the
configuration, so every move is a valid point of the space.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from optimizer.space import suggest
from optimizer.spec.models import StudySpec
from runners.types import Candidate

TWO_MOVES = 0.25  # share of moves that change two parameters
ANY_INT = 0.5  # share of int moves that jump anywhere in the range (else one step)
END_SHARE = 0.5  # share of moves that start from an end of the front
TRIES = 8  # moves drawn until one differs from its base


class Neighbour:
    """A `optimizer.space.Suggester` that replays `base` but for the `moved` parameters."""

    def __init__(self, base: dict[str, Any], moved: set[str], rng: random.Random) -> None:
        self.base = base
        self.moved = moved
        self.rng = rng
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}

    def _keep(self, name: str, dist: BaseDistribution) -> Any | None:
        """The base's value when it is kept and still allowed; None: choose one."""
        if name in self.moved or name not in self.base:
            return None
        value = self.base[name]
        try:  # a stored trial may hold a value the space no longer allows
            return value if dist._contains(dist.to_internal_repr(value)) else None
        except (ValueError, TypeError):
            return None

    def _set(self, name: str, dist: BaseDistribution, value: Any) -> Any:
        self.params[name] = value
        self.distributions[name] = dist
        return value

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        dist = IntDistribution(low, high, step=step, log=log)
        kept = self._keep(name, dist)
        if kept is not None:
            return int(self._set(name, dist, kept))
        old = self.base.get(name)
        if name not in self.moved or not isinstance(old, int) or not low <= old <= high:
            return int(self._set(name, dist, self._any_int(low, high, step, log)))
        if self.rng.random() < ANY_INT:
            value = self._any_int(low, high, step, log)
        elif log:  # a step in log space: about x1.5 or /1.5
            value = round(old * math.exp(self.rng.choice((-1, 1)) * self.rng.uniform(0.2, 0.6)))
        else:
            value = old + self.rng.choice((-1, 1)) * step
        value = min(max(low + round((value - low) / step) * step, low), high)
        return int(self._set(name, dist, value))

    def _any_int(self, low: int, high: int, step: int, log: bool) -> int:
        if log:
            value = round(math.exp(self.rng.uniform(math.log(low), math.log(high))))
            return min(max(low + round((value - low) / step) * step, low), high)
        return self.rng.randrange(low, high + 1, step)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        dist = FloatDistribution(low, high, step=step, log=log)
        kept = self._keep(name, dist)
        if kept is not None:
            return float(self._set(name, dist, kept))
        old = self.base.get(name)
        if name in self.moved and isinstance(old, int | float) and old > 0:
            value = float(old) * math.exp(self.rng.gauss(0.0, 0.3))
        elif log:
            value = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        else:
            value = self.rng.uniform(low, high)
        value = min(max(value, low), high)
        if step is not None:
            value = min(high, low + round((value - low) / step) * step)
        return float(self._set(name, dist, value))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        dist = CategoricalDistribution(list(choices))
        kept = self._keep(name, dist)
        if kept is not None:
            return self._set(name, dist, kept)
        old = self.base.get(name)
        others = [c for c in choices if c != old] if name in self.moved else list(choices)
        return self._set(name, dist, self.rng.choice(others or list(choices)))


def front_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The non-dominated feasible trials (throughput up, latency down)."""
    feasible = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values
        and all(v <= 0 for v in t.constraints.values())
    ]
    feasible.sort(key=lambda t: (-t.values[0], t.values[1]))
    front: list[FrozenTrial] = []
    best_latency = math.inf
    for t in feasible:
        if t.values[1] < best_latency:
            front.append(t)
            best_latency = t.values[1]
    return front


def local_move(
    spec: StudySpec, front: Sequence[FrozenTrial], rng: random.Random
) -> tuple[Candidate, Neighbour]:
    """One move from a trial of a `front` that is not empty: one of its two ends (the most
    throughput, the least latency: they span the hypervolume) half the time, else any. A move
    that lands on its base again is drawn again (`TRIES` times at most)."""
    ends = (front[0], front[-1])
    base = dict((rng.choice(ends) if rng.random() < END_SHARE else rng.choice(front)).params)
    names = sorted(base)
    for _ in range(TRIES):  # a step at a range's end can land where it started: again
        moved = set(rng.sample(names, min(len(names), 2 if rng.random() < TWO_MOVES else 1)))
        neighbour = Neighbour(base, moved, rng)
        candidate = suggest(neighbour, spec)
        if neighbour.params != base:
            break
    return candidate, neighbour


__all__ = ["Neighbour", "front_trials", "local_move"]

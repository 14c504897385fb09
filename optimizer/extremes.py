"""The sweep of the front's ends: every one-setting neighbour of the most-throughput and the
least-latency point, each tried once.

Place in the data flow: the screening of a simulated study (`optimizer.screening`) fills its
local-move share of the K proposals from here first, and falls back to random local moves
(`optimizer.local_moves`) once both ends are swept; the stop rule (`optimizer.convergence`)
does not call the front converged while a neighbour of an end is still untried.

Why: the two ends span the hypervolume (the most-throughput point also sets how far the front
reaches; the reference point is taken from the largest latency), so a point just beyond an end
is worth more than one in the middle, and random moves find it only by luck. On qwen3-moe one
categorical change of the highest-throughput point (vLLM's performance mode) is worth 4% more
throughput at the same latency, and a random one-or-two-setting move of a random front point
hits it about once in a hundred moves: the studies stopped themselves before that.

A neighbour changes one setting of the end's parameters: a categorical (or bool) to each of its
other choices; an int to its range's two bounds and to x 1/3, 1/1.5, 1.5 and 3 of its value; a
float to its bounds and to x 0.9 and 1.1 of its value (rounded to the step, inside the range).
Settings the changed point needs and the end lacks (another engine, a newly enabled branch)
are drawn at random, through the same `optimizer.space.suggest` walk, so every neighbour is a
valid point of the space. The neighbours of an end are swept in a random order (seeded), the
categorical changes first: they are the jumps random moves rarely make (another quantization,
TP size, kernel backend or mode), while numeric steps are what the random local moves do well.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial

from optimizer.local_moves import Neighbour, front_trials
from optimizer.space import ENGINE_PARAM, suggest
from optimizer.spec.models import StudySpec
from runners.types import Candidate

INT_FACTORS = (1 / 3, 1 / 1.5, 1.5, 3.0)
FLOAT_FACTORS = (0.9, 1.1)
Key = tuple[tuple[str, str], ...]


class Forced(Neighbour):
    """A `Neighbour` that gives its one moved parameter a chosen value."""

    def __init__(self, base: dict[str, Any], name: str, value: Any, rng: random.Random) -> None:
        super().__init__(base, {name}, rng)
        self.name = name
        self.value = value

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        if name == self.name:
            dist = IntDistribution(low, high, step=step, log=log)
            return int(self._set(name, dist, self.value))
        return super().suggest_int(name, low, high, step=step, log=log)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if name == self.name:
            dist = FloatDistribution(low, high, step=step, log=log)
            return float(self._set(name, dist, self.value))
        return super().suggest_float(name, low, high, step=step, log=log)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        if name == self.name:
            return self._set(name, CategoricalDistribution(list(choices)), self.value)
        return super().suggest_categorical(name, choices)


def other_values(dist: BaseDistribution, value: Any) -> list[Any]:
    """The values one setting is moved to from `value` (never `value` itself)."""
    if isinstance(dist, CategoricalDistribution):
        return [c for c in dist.choices if c != value]
    if isinstance(dist, IntDistribution):
        raw = [dist.low, dist.high, *(value * f for f in INT_FACTORS)]
        step = dist.step
        snapped = {
            min(max(dist.low + round((v - dist.low) / step) * step, dist.low), dist.high)
            for v in raw
        }
        return sorted(int(v) for v in snapped if v != value)
    if isinstance(dist, FloatDistribution):
        raw_f = [dist.low, dist.high, *(value * f for f in FLOAT_FACTORS)]
        out: set[float] = set()
        for v in raw_f:
            v = min(max(v, dist.low), dist.high)
            if dist.step is not None:
                v = min(dist.high, dist.low + round((v - dist.low) / dist.step) * dist.step)
            if not math.isclose(v, value):
                out.add(float(v))
        return sorted(out)
    return []


def neighbour_moves(trial: FrozenTrial) -> list[tuple[str, Any]]:
    """Every (parameter, new value) one setting away from the trial's parameters."""
    return [
        (name, value)
        for name, dist in sorted(trial.distributions.items())
        for value in other_values(dist, trial.params[name])
    ]


@dataclass
class EndSweep:
    """Which one-setting neighbours of the front's current ends are still untried.

    `next_move` hands out the next untried neighbour (the two ends in turn); a neighbour whose
    parameters the study has seen already (`seen`) is skipped, so an end that moved to one of
    its old neighbours is swept only where it is new."""

    seed: int
    _queues: dict[Key, list[tuple[str, Any]]] = field(default_factory=dict)  # by end's params
    _turn: int = 0

    def _queue(self, end: FrozenTrial) -> list[tuple[str, Any]]:
        key = end_key(end)
        if key not in self._queues:
            rng = random.Random(f"{self.seed}:{key}")
            choices: list[tuple[str, Any]] = []
            steps: list[tuple[str, Any]] = []
            for name, value in neighbour_moves(end):
                kind = end.distributions[name]
                (choices if isinstance(kind, CategoricalDistribution) else steps).append(
                    (name, value)
                )
            rng.shuffle(choices)
            rng.shuffle(steps)
            self._queues[key] = steps + choices  # popped from the end: the choices first
        return self._queues[key]

    def next_move(
        self,
        spec: StudySpec,
        ends: Sequence[FrozenTrial],
        seen: Callable[[Key], bool],
        key_of: Callable[[dict[str, Any]], Key],
        rng: random.Random,
    ) -> tuple[Candidate, Neighbour] | None:
        """The next untried neighbour of one of the `ends` (`ends_of`; in turn), None when
        all are swept."""
        for offset in range(len(ends)):
            end = ends[(self._turn + offset) % len(ends)]
            queue = self._queue(end)
            while queue:
                name, value = queue.pop()
                move = Forced(dict(end.params), name, value, rng)
                candidate = suggest(move, spec)
                if not seen(key_of(move.params)):
                    self._turn += 1
                    return candidate, move
        return None

    def pending(self, ends: Sequence[FrozenTrial]) -> int:
        """How many neighbours of the `ends` are untried (an upper bound: a neighbour seen
        already is dropped only when its turn comes)."""
        return sum(len(self._queue(end)) for end in ends)


def ends_of(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The points to sweep: the two ends of the feasible front, then each engine's own
    highest-throughput point (an engine whose points are all dominated may still hold the best
    region of the space a few settings away), each once."""
    groups: dict[object, list[FrozenTrial]] = {}
    for trial in trials:
        groups.setdefault(trial.params.get(ENGINE_PARAM), []).append(trial)
    fronts = [front_trials(trials)]
    if len(groups) > 1:
        fronts += [front_trials(group) for _, group in sorted(groups.items(), key=str)]
    ends: dict[Key, FrozenTrial] = {}
    for front in fronts:
        for end in front[:1] + front[-1:] if front is fronts[0] else front[:1]:
            ends.setdefault(end_key(end), end)
    return list(ends.values())


def end_key(trial: FrozenTrial) -> Key:
    """A trial's parameters as a key (a pooled trial has no number of its own)."""
    return tuple(sorted((name, repr(value)) for name, value in trial.params.items()))


__all__ = ["EndSweep", "Forced", "ends_of", "neighbour_moves", "other_values"]

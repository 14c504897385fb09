"""Drift: has a configuration's performance changed by more than run-to-run noise?

Place in the data flow: `optimizer.retune` re-measures stored configurations and hands both
sets of numbers here; this module is pure statistics. What "drift" means, in numbers:

- the **noise** of each objective is the pooled relative standard deviation of repeated runs
  of one configuration (every configuration measured at least twice, stored validation repeats
  and the new runs alike): ``sqrt(sum((n_i - 1) * cv_i**2) / sum(n_i - 1))``;
- a change of the mean from ``stored`` (n_s runs) to ``now`` (n_n runs) is **drift** when
  ``|now - stored| / stored > max(z * noise * sqrt(1/n_s + 1/n_n), min_change)``: beyond ``z``
  standard errors of the difference (default 3, so a configuration that did not change is
  flagged about 3 times in 1,000) and beyond the smallest change worth acting on (default 5%);
- its direction is **worse** when throughput fell or latency rose, else **better**;
- a configuration that completed before and now crashes in any run has drifted (worse).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Objective = Literal["throughput", "latency"]
Verdict = Literal["holds", "better", "worse"]
DEFAULT_Z = 3.0
DEFAULT_MIN_CHANGE = 0.05


@dataclass(frozen=True)
class Runs:
    """The runs of one configuration: objective values of those that completed, SLO
    constraint values (<= 0: met) of each, and how many crashed (with their classes)."""

    throughput: tuple[float, ...] = ()
    latency: tuple[float, ...] = ()
    constraints: tuple[Mapping[str, float], ...] = ()
    crashes: tuple[str, ...] = ()

    @property
    def completed(self) -> int:
        return len(self.throughput)

    def values(self, objective: Objective) -> tuple[float, ...]:
        return self.throughput if objective == "throughput" else self.latency

    def mean(self, objective: Objective) -> float:
        return statistics.fmean(self.values(objective))

    def mean_constraints(self) -> dict[str, float]:
        names = {name for c in self.constraints for name in c}
        return {n: statistics.fmean(c[n] for c in self.constraints if n in c) for n in names}


@dataclass(frozen=True)
class NoiseLevel:
    """Relative run-to-run standard deviation per objective, and its degrees of freedom."""

    throughput: float
    latency: float
    dof: int

    def of(self, objective: Objective) -> float:
        return self.throughput if objective == "throughput" else self.latency


def pooled_noise(groups: Sequence[Runs]) -> NoiseLevel | None:
    """The pooled relative standard deviation over every group of at least two runs (None
    when no configuration ran twice)."""
    dof = 0
    objectives: tuple[Objective, ...] = ("throughput", "latency")
    sums = dict.fromkeys(objectives, 0.0)
    for runs in groups:
        n = runs.completed
        if n < 2:
            continue
        dof += n - 1
        for objective in objectives:
            values = runs.values(objective)
            mean = statistics.fmean(values)
            cv = statistics.stdev(values) / abs(mean) if mean else 0.0
            sums[objective] += (n - 1) * cv * cv
    if dof == 0:
        return None
    return NoiseLevel(math.sqrt(sums["throughput"] / dof), math.sqrt(sums["latency"] / dof), dof)


@dataclass(frozen=True)
class Change:
    """One objective of one configuration, stored against now."""

    objective: Objective
    stored: float
    now: float
    threshold: float

    @property
    def relative(self) -> float:
        return (self.now - self.stored) / self.stored if self.stored else math.inf

    @property
    def verdict(self) -> Verdict:
        if abs(self.relative) <= self.threshold:
            return "holds"
        up = self.relative > 0
        return "better" if up == (self.objective == "throughput") else "worse"


def threshold(
    noise: NoiseLevel, objective: Objective, n_stored: int, n_now: int, z: float, min_change: float
) -> float:
    """The smallest relative change that counts as drift (see the module docstring)."""
    spread = noise.of(objective) * math.sqrt(1 / max(1, n_stored) + 1 / max(1, n_now))
    return max(z * spread, min_change)


def compare(
    stored: Runs, now: Runs, noise: NoiseLevel, z: float, min_change: float
) -> tuple[Change, ...]:
    """Both objectives' changes (empty when either side has no completed run)."""
    if stored.completed == 0 or now.completed == 0:
        return ()
    objectives: tuple[Objective, ...] = ("throughput", "latency")
    return tuple(
        Change(
            objective,
            stored.mean(objective),
            now.mean(objective),
            threshold(noise, objective, stored.completed, now.completed, z, min_change),
        )
        for objective in objectives
    )


@dataclass(frozen=True)
class Drift:
    """One re-measured configuration: its trial, both sets of runs, the changes."""

    trial: int
    label: str
    stored: Runs
    now: Runs
    changes: tuple[Change, ...]

    @property
    def crashed_now(self) -> bool:
        return bool(self.now.crashes) and self.stored.completed > 0

    @property
    def worse(self) -> bool:
        return self.crashed_now or any(c.verdict == "worse" for c in self.changes)

    @property
    def drifted(self) -> bool:
        return self.crashed_now or any(c.verdict != "holds" for c in self.changes)

    @property
    def summary(self) -> str:
        if self.crashed_now:
            runs = len(self.now.crashes) + self.now.completed
            classes = ", ".join(sorted(set(self.now.crashes)))
            return f"crashed in {len(self.now.crashes)} of {runs} runs ({classes})"
        moved = [c for c in self.changes if c.verdict != "holds"]
        if not moved:
            return "holds (within noise)"
        return "; ".join(
            f"{c.objective} {c.relative:+.1%} ({c.verdict}, beyond {c.threshold:.1%})"
            for c in moved
        )

"""When a simulated study without ``--n-trials`` stops: its front converged, or time ran out.

Place in the data flow: the command line builds a `StopRule` for a simulated study run
without ``--n-trials`` (`StudyConfig.stop`); the loop keeps a `Stopper` and asks it, before
every new trial, whether to stop. With ``--n-trials`` there is no stop rule and the study runs
exactly that many runner trials.

The plateau rule, on the stored runner trials (completed or crashed; pre-flight rejections cost
nothing and do not count), in trial order: with the reference point (0 throughput, 1.1 x the
largest latency of a feasible trial), let HV(n) be the hypervolume of the feasible front of the
first n of them. The window W and the minimum are counted in evaluated configurations (100 and
150 by default), so in stored trials they shrink with screening: W = max(5, ceil(100 / K)) for
K candidates per trial, the minimum max(10, W + 1, ceil(150 / K)). After the minimum, the front
has converged when the last W trials raised it by at most `rel_gain` (0.2%) of its value:
HV(n) - HV(n - W) <= rel_gain x HV(n), and (a screened simulated study: `Stopper.unswept`)
every one-setting neighbour of the front's two ends has been tried (`optimizer.extremes`), so
the front is judged by its extremes as well as its area. A front with no feasible trial never
converges (the time budget stops it).

A goodput study (`Stopper.goodput`) is judged on one number instead, its best goodput (the
first objective of its feasible trials): it has converged when the last W' trials raised the
best goodput by at most `rel_gain` of it, W' = max(5, ceil(40 / K)) (`goodput_plateau`). Its
front's area kept moving at its low-latency end (points of a few requests/s, a few ms apart)
long after the best goodput had settled, so the area plateau never held within the budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from optuna.trial import FrozenTrial

from optimizer.config import DEFAULT_TIME_BUDGET_S, StopRule
from optimizer.record import DONE_STATES, is_rejection
from optimizer.report.hypervolume import feasible_points, hypervolume_2d

MIN_WINDOW = 5
MIN_TRIALS = 10


def runner_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that reached the runner, in trial order."""
    done = [t for t in trials if t.state in DONE_STATES and not is_rejection(t)]
    return sorted(done, key=lambda t: t.number)


def window_of(rule: StopRule, per_trial: int, goodput: bool = False) -> tuple[int, int]:
    """(window, minimum) in stored trials when each stands for `per_trial` evaluations (a
    goodput study's window is `goodput_window_evaluations`)."""
    evaluations = rule.goodput_window_evaluations if goodput else rule.window_evaluations
    window = max(MIN_WINDOW, math.ceil(evaluations / per_trial))
    least = max(MIN_TRIALS, window + 1, math.ceil(rule.min_evaluations / per_trial))
    return window, least


def plateau(
    trials: Sequence[FrozenTrial], rule: StopRule, per_trial: int = 1
) -> tuple[bool, float]:
    """(converged, relative gain over the last window) for the stored trials, each the best of
    `per_trial` evaluated configurations."""
    ran = runner_trials(trials)
    points = feasible_points(ran)
    window, least = window_of(rule, per_trial)
    if len(ran) < least or not points:
        return False, float("inf")
    ref = (0.0, 1.1 * max(lat for _, lat in points))
    now = hypervolume_2d(points, ref)
    before = hypervolume_2d(feasible_points(ran[: len(ran) - window]), ref)
    if now <= 0.0:
        return False, float("inf")
    gain = (now - before) / now
    return gain <= rule.rel_gain, gain


def goodput_plateau(
    trials: Sequence[FrozenTrial], rule: StopRule, per_trial: int = 1
) -> tuple[bool, float]:
    """(converged, relative gain of the best goodput over the last window) for the stored
    trials of a goodput study."""
    ran = runner_trials(trials)
    window, least = window_of(rule, per_trial, goodput=True)
    now = max((g for g, _ in feasible_points(ran)), default=0.0)
    if len(ran) < least or now <= 0.0:
        return False, float("inf")
    before = max((g for g, _ in feasible_points(ran[: len(ran) - window])), default=0.0)
    gain = (now - before) / now
    return gain <= rule.rel_gain, gain


@dataclass
class Stopper:
    """One run's stop rule and its clock (started when the run starts)."""

    rule: StopRule
    per_trial: int = 1
    unswept: Callable[[], int] | None = None  # untried neighbours of the front's ends
    goodput: bool = False  # judged on the best goodput alone (`goodput_plateau`)
    started: float = field(default_factory=time.monotonic)

    def reason(self, trials: Sequence[FrozenTrial]) -> str | None:
        """Why the study stops now (one line for the user), or None to go on."""
        elapsed = time.monotonic() - self.started
        judge = goodput_plateau if self.goodput else plateau
        converged, gain = judge(trials, self.rule, self.per_trial)
        if converged and self.unswept is not None and self.unswept() > 0:
            converged = False  # an end of the front may still move: sweep it first
        if converged:
            window, _ = window_of(self.rule, self.per_trial, self.goodput)
            what = "the best goodput" if self.goodput else "its hypervolume"
            return (
                f"stopped: the front converged (the last {window} trials raised {what} "
                f"by {gain:.2%}, at most {self.rule.rel_gain:.2%}) after "
                f"{elapsed:.0f} s"
            )
        if elapsed >= self.rule.time_budget_s:
            return (
                f"stopped: time budget of {self.rule.time_budget_s:g} s spent before the front "
                "converged (pass --time-budget for more, or --n-trials for a fixed count)"
            )
        return None


__all__ = [
    "DEFAULT_TIME_BUDGET_S",
    "StopRule",
    "Stopper",
    "goodput_plateau",
    "plateau",
    "runner_trials",
    "window_of",
]

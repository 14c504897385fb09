"""The pool of a simulated study's screening: nothing simulated is wasted.

Place in the data flow: in a simulated study the prediction of a candidate is its own
simulation (`optimizer.predictors.SimPredictor`), so every proposal the screening simulated and
did not choose is already a result. `Screen` (`optimizer.screening`) keeps each one here, once:

- a later round scores the pool (against the front as it is then) together with its new
  proposals and may choose a pooled candidate, without simulating it again (with --noise the
  pooled metrics are one noise draw, scored with the noise spread like a new proposal's);
- the sampler's throw-away in-memory copy learns from the pool: every pooled candidate is added
  there as a finished trial with its simulated objective values and SLO constraints (a
  simulated crash as PRUNED, like a crashed trial; a pre-flight rejection as PRUNED, like a
  stored rejection), so TPE models every configuration simulated, while the stored study still
  holds only the trials that ran.

A pooled candidate that is dominated, breaks an SLO or crashed is worth nothing now and never
will be (the front only grows), so without noise it leaves the choosable set at once; it stays
in what the sampler learns from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from optimizer.objectives import trial_values
from optimizer.spec.models import StudySpec
from runners.types import TrialOutcome

Key = tuple[tuple[str, str], ...]
T = TypeVar("T")


def learned_trial(
    params: dict[str, object],
    distributions: dict[str, BaseDistribution],
    outcome: TrialOutcome | None,
    spec: StudySpec,
) -> FrozenTrial | None:
    """The finished trial the sampler's copy learns from: COMPLETE with the values and
    constraints the study would record, PRUNED for a crash or a pre-flight rejection
    (`outcome` None); None for anything else (an infrastructure fault teaches nothing)."""
    if outcome is None or outcome.status == "crashed":
        return optuna.trial.create_trial(
            state=TrialState.PRUNED, params=params, distributions=distributions
        )
    if outcome.status != "ok" or outcome.metrics is None:
        return None
    worth = trial_values(outcome, spec)
    return optuna.trial.create_trial(
        values=list(worth.values),
        params=params,
        distributions=distributions,
        constraints=dict(worth.constraints) or None,
    )


@dataclass
class CandidatePool(Generic[T]):
    """Every simulated proposal of one study run, by parameters: the choosable ones (`T`, the
    screening's scored candidate) and the finished trials the sampler learns from."""

    choosable: dict[Key, T] = field(default_factory=dict)
    learned: dict[Key, FrozenTrial] = field(default_factory=dict)

    def __contains__(self, key: Key) -> bool:
        return key in self.learned

    def add(self, key: Key, candidate: T | None, trial: FrozenTrial | None) -> None:
        """Keep a proposal: choosable when `candidate` is given, learned from when `trial` is."""
        if candidate is not None:
            self.choosable[key] = candidate
        if trial is not None:
            self.learned[key] = trial

    def drop(self, keys: Iterable[Key]) -> None:
        """These are worth nothing now and never will be: no longer choosable."""
        for key in keys:
            self.choosable.pop(key, None)

    def candidates(self) -> list[T]:
        return list(self.choosable.values())

    def trials(
        self, stored: Sequence[FrozenTrial], key_of: Callable[[FrozenTrial], Key]
    ) -> list[FrozenTrial]:
        """What the sampler's copy holds: the stored trials (but WAITING ones), then every
        learned trial the stored study does not hold already (a stored trial chosen from the
        pool is not counted twice)."""
        kept = [t for t in stored if t.state != TrialState.WAITING]
        have = {key_of(t) for t in kept}
        return kept + [t for k, t in self.learned.items() if k not in have]


__all__ = ["CandidatePool", "Key", "learned_trial"]

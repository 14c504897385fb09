"""The recommended configuration: the one configuration of a study the user should deploy.

Place in the data flow: read after a study, through `optimizer.record`; `optimizer.export`
deploys it by default and `optimizer.retune` checks whether it still holds. The rule lives in
`choose` alone, so a better rule replaces one function. Today it is what the report's headline
names: the feasible completed trial with the highest throughput (on a tie, the lower latency),
which is always a point of the Pareto front.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import TrialState

from optimizer.record import TrialRecord, read_all


def choose(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The recommendation among `records` (None when none completed and met every SLO)."""
    usable = [
        r
        for r in records
        if r.state == TrialState.COMPLETE and r.values is not None and r.feasible
    ]
    if not usable:
        return None
    return max(usable, key=lambda r: (r.throughput, -r.latency, -r.number))


def recommended(study: optuna.Study) -> TrialRecord | None:
    """The study's recommended trial."""
    return choose(read_all(study, states=(TrialState.COMPLETE,)))

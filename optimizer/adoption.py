"""Adopting a study this tool did not make (``--adopt``): its trials are kept but not read.

Place in the data flow: `optimizer.identity.describe_study` refuses a foreign study unless the
study command was given ``--adopt``; then `adopt_foreign` records, once, how many trials the
study held (the study attribute ``adopted``: trial numbers below ``before`` are adopted) and
describes them. From then on every reader of the study's trials asks `own_trials` /
`best_own_trials`: adopted trials do not count toward ``--n-trials``, are not on the front,
in the report or in an export, and are never deleted or changed. They were made by something
else (a plain Optuna script, say): they have no serve command, no engine, no workload, and
their objectives mean whatever that program meant, so nothing here can read them as serving
configurations. Samplers still see them (Optuna gives a sampler every trial), which only
matters for parameters of the same name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import optuna
from optuna.study._multi_objective import _get_pareto_front_trials_by_trials
from optuna.trial import FrozenTrial, TrialState

ADOPTED = "adopted"


def adopted_before(study: optuna.Study) -> int:
    """Trials numbered below this were adopted (0: none)."""
    record = study.user_attrs.get(ADOPTED)
    return int(record.get("before", 0)) if isinstance(record, dict) else 0


def own_trials(
    study: optuna.Study, states: Iterable[TrialState] | None = None
) -> list[FrozenTrial]:
    """The study's trials this tool made (all of them unless the study was adopted)."""
    trials = study.get_trials(deepcopy=False, states=None if states is None else tuple(states))
    before = adopted_before(study)
    return [t for t in trials if t.number >= before] if before else trials


def best_own_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front of this tool's trials (Optuna's `best_trials` when none were
    adopted; an adopted trial can neither join the front nor push one of ours off it)."""
    if not adopted_before(study):
        return study.best_trials
    complete = own_trials(study, (TrialState.COMPLETE,))
    return _get_pareto_front_trials_by_trials(complete, study.directions, consider_constraint=True)


def adopt_foreign(study: optuna.Study) -> list[str]:
    """Mark every trial of a foreign study as adopted; what adoption means, for the user."""
    trials = study.get_trials(deepcopy=False)
    before = max((t.number for t in trials), default=-1) + 1
    states = Counter(t.state.name for t in trials)
    params = sorted({name for t in trials for name in t.params})
    study.set_user_attr(ADOPTED, {"before": before, "states": dict(states)})
    listing = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
    shown = ", ".join(params[:8]) + (", ..." if len(params) > 8 else "")
    return [
        f"note: adopting study {study.study_name!r}, made by another program: {len(trials)} "
        f"trial(s) ({listing}; parameters: {shown or 'none'}).",
        "note: they stay in the storage unchanged, numbered 0 to "
        f"{before - 1}; this tool cannot read them as serving configurations (no serve "
        "command, engine or workload; their objectives mean what that program meant), so they "
        "do not count toward --n-trials and are left out of the front, the report and "
        "exports. Its own trials start at number "
        f"{before}.",
    ]

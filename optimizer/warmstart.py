"""`--warm-start STUDY`: begin a study with another study's Pareto configurations, re-measured.

The source is a study name in the same storage, or ``STORAGE_URL#STUDY``. Its feasible Pareto
trials are enqueued (parameters only: they are run again on this study's hardware and workload,
never copied as results) when every parameter exists in this space and lies in its range;
the others are listed as skipped, with the reason. Enqueueing is idempotent: a configuration
already taken from the same source trial is not enqueued twice across resumes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import optuna
from optuna.storages import BaseStorage

from optimizer.adoption import best_own_trials
from optimizer.errors import WarmStartError
from optimizer.record import WARM_START, marks_taken
from optimizer.space import ENGINE_PARAM, VARIANT_PARAM, Walk
from optimizer.spec.models import StudySpec
from optimizer.storage import redact
from runners.types import SettingValue


def load_source(reference: str, storage: BaseStorage) -> optuna.Study:
    url, _, name = reference.rpartition("#") if "#" in reference else ("", "", reference)
    try:
        return optuna.load_study(study_name=name, storage=url or storage)
    except KeyError:
        raise WarmStartError(
            f"--warm-start {redact(reference)!r}: no study named {name!r} in "
            f"{redact(url) if url else 'this storage'}"
        ) from None


def misfit(spec: StudySpec, params: Mapping[str, SettingValue]) -> str | None:
    """Why `params` cannot be replayed in `spec`, or None when every value fits."""
    engine = params.get(ENGINE_PARAM)
    if engine not in spec.engines:
        return f"engine {engine!r} is not searched here"
    if params.get(VARIANT_PARAM) not in spec.model.variants:
        return f"model variant {params.get(VARIANT_PARAM)!r} is not searched here"
    walk = Walk(spec, str(engine))
    for slot in walk:
        if slot.param not in params:
            return f"{slot.param} was not set in the source trial"
        value = params[slot.param]
        if not slot.alt.contains(value):
            return f"{slot.param}={value!r} is outside {slot.alt.describe()}"
        walk.choose(slot, value)
    return None


def enqueue_warm_start(
    study: optuna.Study, spec: StudySpec, reference: str, storage: BaseStorage
) -> int:
    """Enqueue the source's feasible Pareto configurations; returns how many were enqueued."""
    source = load_source(reference, storage)
    taken = marks_taken(study.get_trials(deepcopy=False), WARM_START)
    enqueued = 0
    for trial in best_own_trials(source):
        origin = f"{source.study_name}#{trial.number}"
        if origin in taken:
            continue
        reason = misfit(spec, trial.params)
        if reason is not None:
            print(f"warm start: skipping {origin}: {reason}", file=sys.stderr)
            continue
        study.enqueue_trial(trial.params, user_attrs={WARM_START: origin})
        enqueued += 1
    return enqueued

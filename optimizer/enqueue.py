"""What a study runs before the sampler proposes anything, and the grid sampler's next point.

Place in the data flow: the loop calls `enqueue_openings` once per run, under the study's
trial slot (so cooperating drivers enqueue once): the warm-start configurations of another
study (`optimizer.warmstart`), the baseline (the engine defaults, `optimizer.space`) and the
engine-default anchors (`optimizer.anchors`). Each is marked on the trial, and each is
enqueued only once per study, however often it is resumed. With ``--sampler grid`` the loop
calls `enqueue_grid_point` whenever nothing else waits.
"""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage

from optimizer.anchors import engine_default_anchors
from optimizer.config import StudyConfig
from optimizer.record import ANCHOR, BASELINE, GRID, has_mark
from optimizer.samplers import GridPlan
from optimizer.space import baseline_params
from optimizer.warmstart import enqueue_warm_start


def enqueue_openings(study: optuna.Study, config: StudyConfig, storage: BaseStorage) -> None:
    """Warm start (if asked), the baseline, and the anchors (unless turned off)."""
    spec = config.spec
    if config.warm_start:
        enqueue_warm_start(study, spec, config.warm_start, storage)
    trials = study.get_trials(deepcopy=False)
    if not has_mark(trials, BASELINE, live_only=True):
        study.enqueue_trial(baseline_params(spec), user_attrs={BASELINE: True})
    if config.anchors and not has_mark(study.get_trials(deepcopy=False), ANCHOR):
        for label, params in engine_default_anchors(spec):
            study.enqueue_trial(params, user_attrs={ANCHOR: label})


def enqueue_grid_point(study: optuna.Study, grid: GridPlan) -> None:
    point = grid.next_point(t.params for t in study.get_trials(deepcopy=False))
    if point is not None:
        study.enqueue_trial(point, user_attrs={GRID: True})

"""Engine-default anchors: each engine's own defaults, on each checkpoint, as the first trials.

What a person does first when comparing engines is run each one with its defaults at the
smallest parallelism that fits. The driver enqueues exactly that, right after the baseline,
so the sampler starts from one feasible, sensible point per engine and checkpoint instead of
from random draws in a space that is mostly infeasible for large models.

For every engine of the space and every model variant, each setting takes the engine's default
on this GPU when the space can hold it, else the nearest value it can (numbers snapped into
range; a count whose default is 0, meaning "the engine derives it", takes the top of its
range). Categorical settings whose default is outside the space (typically TP, whose default 1
cannot hold a 235B model) are tried in the space's order, and the first combination that the
pre-flight static rules accept and the memory model calls safe with its uncertainty margins
(an anchor should not itself be a borderline crash) is the anchor. Engines or checkpoints with no
such combination get no anchor. The baseline is never repeated.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from optimizer.feasibility import FeasibilityChecker
from optimizer.space import (
    ENGINE_PARAM,
    VARIANT_PARAM,
    AnyParam,
    EngineDefaults,
    Walk,
    baseline_params,
    candidate_from_params,
)
from optimizer.spec.models import (
    CategoricalParam,
    EngineSection,
    FloatParam,
    IntParam,
    StudySpec,
)
from runners.catalog import get_gpu, get_model
from runners.engines import get_engine, resolve_candidate
from runners.types import SettingValue

MAX_COMBINATIONS = 64

Params = dict[str, SettingValue]


def engine_default_anchors(spec: StudySpec) -> list[tuple[str, Params]]:
    """(label, params) of each engine x variant default anchor, baseline excluded."""
    checker = FeasibilityChecker(spec, learned=False, strict=True)
    seen = [baseline_params(spec)]
    anchors: list[tuple[str, Params]] = []
    for engine in spec.engines:
        for variant in spec.model.variants:
            params = _anchor(spec, engine, variant, checker)
            if params is not None and params not in seen:
                seen.append(params)
                anchors.append((f"{engine} {variant} defaults", params))
    return anchors


def _anchor(
    spec: StudySpec, engine: str, variant: str, checker: FeasibilityChecker
) -> Params | None:
    section = spec.engines[engine]
    adapter = get_engine(engine, section.version)
    model, gpu = get_model(spec.model.name), get_gpu(spec.node_group.gpu)
    defaults = EngineDefaults(adapter, {}, model, gpu)
    free = [
        setting
        for setting in section.settings
        if any(isinstance(alt, CategoricalParam) for alt in section.alternatives(setting))
        and not _holds_default(section, setting, defaults)
    ]
    options = [_categorical_choices(section.alternatives(s)) for s in free]
    for combination in itertools.islice(itertools.product(*options), MAX_COMBINATIONS):
        pinned = dict(zip(free, combination, strict=True))
        params = _walk(spec, engine, variant, pinned)
        if params is None:
            continue
        resolved = resolve_candidate(candidate_from_params(spec, params), spec.node_group)
        if checker.check(resolved, params, {}, []).launch:
            return params
    return None


def _holds_default(section: EngineSection, setting: str, defaults: EngineDefaults) -> bool:
    value = defaults(setting)
    return any(alt.contains(value) for alt in section.alternatives(setting))


def _categorical_choices(alternatives: list[AnyParam]) -> list[SettingValue]:
    choices: list[SettingValue] = []
    for alt in alternatives:
        if isinstance(alt, CategoricalParam):
            choices.extend(c for c in alt.choices if c not in choices)
    return choices


def _walk(
    spec: StudySpec, engine: str, variant: str, pinned: Mapping[str, SettingValue]
) -> Params | None:
    """Fill every active setting: pinned value, else the engine default (snapped into range)."""
    walk = Walk(spec, engine)
    adapter = get_engine(engine, walk.section.version)
    model, gpu = get_model(spec.model.name), get_gpu(spec.node_group.gpu)
    defaults = EngineDefaults(adapter, pinned, model, gpu)
    for slot in walk:
        if slot.setting in pinned:
            value = pinned[slot.setting]
            if not slot.alt.contains(value):
                return None
        else:
            value = _nearest(slot.alt, defaults(slot.setting))
        walk.choose(slot, value)
    return {ENGINE_PARAM: engine, VARIANT_PARAM: variant, **walk.params}


def _nearest(alt: AnyParam, value: SettingValue) -> SettingValue:
    if alt.contains(value):
        return value
    if isinstance(alt, IntParam) and isinstance(value, int) and value <= 0 < alt.low:
        return alt.high  # 0 / -1 = "the engine derives it" (e.g. from the KV pool): unbounded
    if isinstance(alt, IntParam | FloatParam) and isinstance(value, int | float):
        clipped = min(max(float(value), alt.low), alt.high)
        step = alt.step if alt.step else None
        if step:
            clipped = alt.low + round((clipped - alt.low) / step) * step
        if isinstance(alt, IntParam):
            return round(clipped)
        return round(clipped, 10)
    if isinstance(alt, CategoricalParam):
        return alt.choices[0]
    return bool(value)

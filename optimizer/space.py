"""The conditional space of a space file, walked once: suggest, baseline, replay.

`Walk` is the one walk over an engine's settings in file order (a setting whose `when` does not
match the values chosen so far is skipped, so a vLLM trial never carries an SGLang parameter);
`suggest` (the only caller of `trial.suggest_*`: engine, then model variant, then the walk),
`baseline_params` (the engine-defaults trial), `candidate_from_params` (replaying a stored
trial), the anchors, the warm-start fit check, the grid lattice and validation's ablation all
fill the same walk. Parameter names are ``<engine>.<setting>`` (``[i]`` appended when a setting
has several alternatives).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from optimizer.errors import SpecError
from optimizer.spec.models import BoolParam, CategoricalParam, FloatParam, IntParam, StudySpec
from runners.catalog import FORMATS, GpuSpec, ModelSpec, get_gpu, get_model
from runners.engines import EngineAdapter, check_version, default_in_context, get_engine
from runners.types import Candidate, CheckpointFormat, EngineName, SettingValue

ENGINE_PARAM = "engine"
VARIANT_PARAM = "model_variant"

AnyParam = IntParam | FloatParam | CategoricalParam | BoolParam


class Suggester(Protocol):
    """The part of `optuna.Trial` (and `optuna.trial.FixedTrial`) this module uses."""

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def param_name(engine: str, setting: str, index: int, alternatives: int) -> str:
    return f"{engine}.{setting}" if alternatives == 1 else f"{engine}.{setting}[{index}]"


def setting_of(param: str) -> tuple[str, str]:
    """(engine, setting) of an Optuna parameter name (the inverse of `param_name`); the
    study-wide choices (engine, checkpoint variant) have no engine."""
    if param in (ENGINE_PARAM, VARIANT_PARAM):
        return "", param
    engine, _, setting = param.partition(".")
    return engine, setting.split("[", 1)[0]


@dataclass(frozen=True)
class Slot:
    """One active setting on a walk: the setting, its Optuna parameter name, what it allows."""

    setting: str
    param: str
    alt: AnyParam


class Walk:
    """The one walk over one engine's conditional space; every caller fills it its own way.

    Iterating yields the active settings in file order: a setting is active when the first of
    its alternatives whose `when` matches the values chosen so far exists. The caller decides
    each value and records it with `choose` (or skips the setting by not choosing) before the
    walk moves on, so later conditions see it. `chosen` holds the settings, `params` the same
    values under their Optuna parameter names.
    """

    def __init__(self, spec: StudySpec, engine: str) -> None:
        self.engine = engine
        self.section = spec.engines[engine]
        self.chosen: dict[str, SettingValue] = {}
        self.params: dict[str, SettingValue] = {}

    def __iter__(self) -> Iterator[Slot]:
        for setting in self.section.settings:
            alternatives = self.section.alternatives(setting)
            for index, alt in enumerate(alternatives):
                if alt.applies(self.chosen):
                    yield Slot(
                        setting, param_name(self.engine, setting, index, len(alternatives)), alt
                    )
                    break

    def choose(self, slot: Slot, value: SettingValue) -> None:
        self.chosen[slot.setting] = value
        self.params[slot.param] = value


class EngineDefaults:
    """The engine's default of each setting on this hardware when `explicit` are set.

    `default_in_context` resolves the whole engine for one setting; on a walk the context is
    the same for every setting it does not set, so it is resolved once and looked up.
    """

    def __init__(
        self,
        adapter: EngineAdapter,
        explicit: Mapping[str, SettingValue],
        model: ModelSpec,
        gpu: GpuSpec,
    ) -> None:
        self._adapter = adapter
        self._explicit = dict(explicit)
        self._model = model
        self._gpu = gpu
        self._resolved: dict[str, SettingValue] | None = None

    def __call__(self, setting: str) -> SettingValue:
        if setting in self._explicit:
            return default_in_context(
                self._adapter, setting, self._explicit, self._model, self._gpu
            )
        if self._resolved is None:
            self._resolved = self._adapter.effective_settings(
                self._explicit, self._model, self._gpu
            )
        return self._resolved[setting]


def suggest(trial: Suggester, spec: StudySpec) -> Candidate:
    """Ask `trial` for one configuration of `spec`."""
    engine = _pick(trial, ENGINE_PARAM, list(spec.engines))
    variant = _pick(trial, VARIANT_PARAM, list(spec.model.variants))
    walk = Walk(spec, engine)
    for slot in walk:
        walk.choose(slot, _suggest_one(trial, slot.param, slot.alt))
    section = walk.section
    adapter = get_engine(engine, section.version)
    return Candidate.make(
        engine=adapter.name,
        engine_version=check_version(adapter, section.version),
        model=get_model(spec.model.name).name,
        checkpoint=spec.model.checkpoint(variant),
        weight_dtype=_checkpoint_format(variant),
        settings=walk.chosen,
    )


def _pick(trial: Suggester, name: str, options: list[str]) -> str:
    return str(trial.suggest_categorical(name, list(options)))


def _checkpoint_format(variant: str) -> CheckpointFormat:
    """A variant key is its checkpoint's format (the space file's variants are keyed so)."""
    if variant not in FORMATS:
        raise SpecError(f"model variant {variant!r} is not a checkpoint format ({FORMATS})")
    return variant


def _suggest_one(trial: Suggester, name: str, param: AnyParam) -> SettingValue:
    if isinstance(param, IntParam):
        return trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
    if isinstance(param, FloatParam):
        number = trial.suggest_float(name, param.low, param.high, step=param.step, log=param.log)
        return round(number, 10)  # 0.9199999999999999 from a 0.01 step is 0.92
    if isinstance(param, CategoricalParam):
        choice: SettingValue = trial.suggest_categorical(name, list(param.choices))
        return choice
    flag: bool = trial.suggest_categorical(name, [True, False])
    return flag


def baseline_params(
    spec: StudySpec, model: ModelSpec | None = None, gpu: GpuSpec | None = None
) -> dict[str, SettingValue]:
    """Optuna parameters of the engine-defaults trial; `SpecError` if the space cannot hold it."""
    model = model or get_model(spec.model.name)
    gpu = gpu or get_gpu(spec.node_group.gpu)
    baseline = spec.baseline
    engine: EngineName = baseline.engine
    adapter = get_engine(engine, spec.engines[engine].version)
    defaults = EngineDefaults(adapter, baseline.settings, model, gpu)
    walk = Walk(spec, engine)
    for slot in walk:
        if slot.setting in baseline.settings:
            value = baseline.settings[slot.setting]
            origin = "the baseline's value"
        else:
            value = defaults(slot.setting)
            origin = f"{engine}'s default on {gpu.name}"
        if not slot.alt.contains(value):
            field = f"engines.{engine}.settings.{slot.setting}"
            raise SpecError(
                f"{field}: the baseline needs {value!r} ({origin}) but this setting allows "
                f"{slot.alt.describe()}; widen it to include {value!r}, or set a value for it "
                "under baseline.settings"
            )
        walk.choose(slot, value)
    for setting in baseline.settings:
        if setting not in walk.chosen:
            raise SpecError(
                f"baseline.settings.{setting}: the space never suggests this setting for the "
                f"baseline (it is not declared under engines.{engine}.settings, or its 'when' "
                "does not match the baseline)"
            )
    return {ENGINE_PARAM: engine, VARIANT_PARAM: baseline.variant, **walk.params}


class _ReplayTrial:
    """Replays stored parameters through `suggest` (like optuna's FixedTrial, minus Optuna)."""

    def __init__(self, params: Mapping[str, SettingValue]) -> None:
        self._params = params

    def _get(self, name: str) -> SettingValue:
        if name not in self._params:
            raise SpecError(f"stored trial has no parameter {name!r}; was the space edited?")
        return self._params[name]

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return int(self._get(name))

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self._get(name))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._get(name)


def candidate_from_params(spec: StudySpec, params: Mapping[str, SettingValue]) -> Candidate:
    """Rebuild the candidate a finished trial ran, from its stored parameters."""
    return suggest(_ReplayTrial(params), spec)

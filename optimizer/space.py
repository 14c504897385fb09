"""The only caller of `trial.suggest_*`: a `StudySpec` and an Optuna trial become a `Candidate`.

Order is fixed so conditional spaces stay consistent: first the engine, then the model variant,
then that engine's settings in file order. A setting whose `when` does not match the values
chosen so far is not suggested at all, so a vLLM trial never carries an SGLang parameter and a
chunked-prefill-off trial never carries the chunked-only token budget. Parameter names are
``<engine>.<setting>`` (``[i]`` appended when a setting has several alternatives).

`baseline_params` computes the parameters of the engine-defaults trial: the baseline's explicit
settings, and for every other active setting the engine's own default on this hardware.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from optimizer.spec import (
    BoolParam,
    CategoricalParam,
    FloatParam,
    IntParam,
    SpecError,
    StudySpec,
)
from runners.catalog import GpuSpec, ModelSpec, get_gpu, get_model
from runners.engines import check_version, default_in_context, get_engine
from runners.types import Candidate, EngineName, SettingValue, WeightDtype

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


def suggest(trial: Suggester, spec: StudySpec) -> Candidate:
    """Ask `trial` for one configuration of `spec`."""
    engine = _pick(trial, ENGINE_PARAM, list(spec.engines))
    variant = _pick(trial, VARIANT_PARAM, list(spec.model.variants))
    section = spec.engines[engine]
    chosen: dict[str, SettingValue] = {}
    for setting in section.settings:
        alternatives = section.alternatives(setting)
        for index, alt in enumerate(alternatives):
            if alt.applies(chosen):
                name = param_name(engine, setting, index, len(alternatives))
                chosen[setting] = _suggest_one(trial, name, alt)
                break
    adapter = get_engine(engine, section.version)
    return Candidate.make(
        engine=adapter.name,
        engine_version=check_version(adapter, section.version),
        model=get_model(spec.model.name).name,
        checkpoint=spec.model.variants[variant],  # type: ignore[index]
        weight_dtype=_weight_dtype(variant),
        settings=chosen,
    )


def _pick(trial: Suggester, name: str, options: list[str]) -> str:
    return str(trial.suggest_categorical(name, list(options)))


def _weight_dtype(variant: str) -> WeightDtype:
    return "fp8" if variant == "fp8" else "bf16"


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
    section = spec.engines[engine]
    adapter = get_engine(engine, section.version)
    params: dict[str, SettingValue] = {ENGINE_PARAM: engine, VARIANT_PARAM: baseline.variant}
    chosen: dict[str, SettingValue] = {}
    for setting in section.settings:
        alternatives = section.alternatives(setting)
        for index, alt in enumerate(alternatives):
            if not alt.applies(chosen):
                continue
            if setting in baseline.settings:
                value = baseline.settings[setting]
                origin = "the baseline's value"
            else:
                value = default_in_context(adapter, setting, baseline.settings, model, gpu)
                origin = f"{engine}'s default on {gpu.name}"
            if not alt.contains(value):
                field = f"engines.{engine}.settings.{setting}"
                raise SpecError(
                    f"{field}: the baseline needs {value!r} ({origin}) but this setting allows "
                    f"{alt.describe()}; widen it to include {value!r}, or set a value for it "
                    "under baseline.settings"
                )
            chosen[setting] = value
            params[param_name(engine, setting, index, len(alternatives))] = value
            break
    for setting in baseline.settings:
        if setting not in chosen:
            raise SpecError(
                f"baseline.settings.{setting}: the space never suggests this setting for the "
                f"baseline (it is not declared under engines.{engine}.settings, or its 'when' "
                "does not match the baseline)"
            )
    return params


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

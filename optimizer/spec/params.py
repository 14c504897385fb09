"""The searched settings of a space file: one pydantic model per parameter type.

Place in the data flow: `optimizer.spec.models` builds each engine section's `parameters` from
these (a `ParamSpec` is any of them, chosen by its `type` field); `optimizer.space` turns them
into Optuna distributions, and pre-flight and the reports ask them what they contain
(`contains`) and how to say it (`describe`). `check_bounds` is the part of the checks that needs
only the parameter itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from runners.types import SettingValue

# A float range with a step is a grid: finer than this and the step is a precision the search
# cannot use, and at float's precision limits Optuna's own rounding fails on the first trial
MAX_FLOAT_STEPS = 1_000_000

Scalar = bool | int | float | str


class StrictModel(BaseModel):
    """Unknown keys are errors and values are frozen, as everywhere in the space file."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _ParamBase(StrictModel):
    when: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict,
        description="only suggest this setting when every named setting has one of these values",
    )

    def applies(self, chosen: Mapping[str, SettingValue]) -> bool:
        for name, wanted in self.when.items():
            if name not in chosen:
                return False
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if not any(_same(chosen[name], value) for value in allowed):
                return False
        return True


def _same(a: Scalar, b: Scalar) -> bool:
    """Equality that does not confuse True with 1."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


class IntParam(_ParamBase):
    type: Literal["int"]
    low: int
    high: int
    step: int = 1
    log: bool = False

    def check_bounds(self) -> str | None:
        if self.low > self.high:
            return f"low ({self.low}) must not exceed high ({self.high})"
        if self.step < 1:
            return f"step ({self.step}) must be a whole number >= 1"
        if self.log and self.step != 1:
            return "log: true needs step 1 (Optuna cannot step a log scale)"
        if self.log and self.low < 1:
            return "log: true needs low >= 1"
        return None

    def contains(self, value: SettingValue) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def describe(self) -> str:
        scale = ", log scale" if self.log else f", step {self.step}"
        return f"integers {self.low}..{self.high}{scale}"


class FloatParam(_ParamBase):
    type: Literal["float"]
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def check_bounds(self) -> str | None:
        if self.low > self.high:
            return f"low ({self.low}) must not exceed high ({self.high})"
        if self.log and self.step is not None:
            return "log: true cannot be combined with step"
        if self.step is not None and not self.step > 0:
            return f"step ({self.step}) must be above 0"
        if self.step is not None and (self.high - self.low) / self.step > MAX_FLOAT_STEPS:
            return (
                f"step ({self.step}) cuts {self.low}..{self.high} into more than "
                f"{MAX_FLOAT_STEPS:,} values; use a coarser step or leave step out"
            )
        if self.log and self.low <= 0:
            return "log: true needs low > 0"
        return None

    def contains(self, value: SettingValue) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not self.low - 1e-12 <= value <= self.high + 1e-12:
            return False
        if self.step is None:
            return True
        steps = (value - self.low) / self.step
        return abs(steps - round(steps)) < 1e-6

    def describe(self) -> str:
        scale = ", log scale" if self.log else (f", step {self.step}" if self.step else "")
        return f"numbers {self.low}..{self.high}{scale}"


class CategoricalParam(_ParamBase):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    def check_bounds(self) -> str | None:
        if len({(type(c), c) for c in self.choices}) != len(self.choices):
            return f"choices {self.choices} contain duplicates"
        return None

    def contains(self, value: SettingValue) -> bool:
        return any(_same(value, choice) for choice in self.choices)

    def describe(self) -> str:
        return f"one of {self.choices}"


class BoolParam(_ParamBase):
    type: Literal["bool"]

    def check_bounds(self) -> str | None:
        return None

    def contains(self, value: SettingValue) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "true or false"


ParamSpec = Annotated[
    IntParam | FloatParam | CategoricalParam | BoolParam, Field(discriminator="type")
]

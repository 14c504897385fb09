"""What every engine adapter provides, and the shared machinery built on it.

An adapter knows one engine's settings (name, type, valid values, how they become flags), the
engine's defaults on given hardware, the engine's own argument validation (with its real
error text), and how to render a launch command. Adapters are pure: no I/O, no processes.

The key operation is `effective_settings`: the value every known setting takes when the engine
starts with some explicit settings on some GPU. From it follow the engine default of one
setting in context (`default_in_context`), the minimal set of flags that reproduces a
configuration (`minimal_settings`), and the engine-neutral `ServingConfig` (`resolve`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from runners.catalog import GpuSpec, ModelSpec
from runners.errors import EngineError
from runners.types import (
    Candidate,
    Crash,
    EngineName,
    LaunchSpec,
    NodeGroup,
    Placement,
    ServingConfig,
    SettingValue,
)

SettingKind = Literal["int", "float", "bool", "choice"]


@dataclass(frozen=True)
class SettingInfo:
    """One engine setting as the engine's CLI knows it.

    `choices` lists valid values for ``choice`` settings (and optionally for ints, e.g. -1).
    For ``bool`` settings, `true_flag` / `false_flag` are the spellings that set it (a
    ``None`` spelling means the engine has no flag for that value).
    """

    name: str
    kind: SettingKind
    help: str
    choices: tuple[SettingValue, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    true_flag: str | None = None
    false_flag: str | None = None

    def check(self, value: SettingValue) -> str | None:
        """Return why `value` is invalid for this setting, or None when it is valid."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
        if self.kind == "choice":
            if value in self.choices:
                return None
            return f"{value!r} is not one of {list(self.choices)}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {value!r}"
        if self.kind == "int" and not isinstance(value, int):
            return f"expected an integer, got {value!r}"
        if value in self.choices:
            return None
        if self.minimum is not None and value < self.minimum:
            return f"{value} is below the minimum {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{value} is above the maximum {self.maximum:g}"
        return None


class EngineAdapter(Protocol):
    """One serving engine. Implementations are pure and stateless."""

    name: EngineName
    versions: tuple[str, ...]

    def settings(self) -> Mapping[str, SettingInfo]:
        """All settings this adapter can search, by engine-native name."""
        ...

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        """The value of every setting when the engine starts with `explicit` on `gpu`."""
        ...

    def validate(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> Crash | None:
        """The engine's own argument checks, as the engine would fail them at start."""
        ...

    def to_serving_config(
        self,
        candidate: Candidate,
        effective: Mapping[str, SettingValue],
        model: ModelSpec,
        gpu: GpuSpec,
        node_group: NodeGroup,
    ) -> ServingConfig:
        """Translate effective settings into the engine-neutral config the simulator uses."""
        ...

    def base_argv(self, candidate: Candidate) -> list[str]:
        """The launch command before any flag, e.g. ``vllm serve <checkpoint>``."""
        ...

    def port_flags(self, host: str, port: int) -> list[str]:
        """Flags that bind the server to `host`:`port`."""
        ...

    def gpus_per_instance(self, effective: Mapping[str, SettingValue]) -> int:
        """How many GPUs one engine instance with these settings occupies."""
        ...


def check_version(adapter: EngineAdapter, version: str) -> str:
    """Return the supported version `version` names (``0.33`` matches ``0.33.0``)."""
    for known in adapter.versions:
        if version == known or known.startswith(version + ".") or version.startswith(known):
            return known
    raise EngineError(
        f"{adapter.name} version {version!r} is not supported; supported: "
        f"{', '.join(adapter.versions)}"
    )


def default_in_context(
    adapter: EngineAdapter,
    setting: str,
    explicit: Mapping[str, SettingValue],
    model: ModelSpec,
    gpu: GpuSpec,
) -> SettingValue:
    """The engine's default for `setting` when the other settings are `explicit`."""
    others = {name: value for name, value in explicit.items() if name != setting}
    return adapter.effective_settings(others, model, gpu)[setting]


def minimal_settings(
    adapter: EngineAdapter, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
) -> dict[str, SettingValue]:
    """Drop every explicit setting the engine would take anyway, keeping the result identical.

    A setting is dropped only if the effective configuration without it is exactly the same,
    so interactions (e.g. vLLM's throughput mode doubling *defaulted* batch limits) are kept.
    """
    target = adapter.effective_settings(explicit, model, gpu)
    kept = dict(explicit)
    for name in list(explicit):
        trial = {k: v for k, v in kept.items() if k != name}
        if adapter.effective_settings(trial, model, gpu) == target:
            kept = trial
    return kept


def setting_flags(adapter: EngineAdapter, settings: Mapping[str, SettingValue]) -> list[str]:
    """Render settings as CLI flags in the adapter's table order."""
    table = adapter.settings()
    argv: list[str] = []
    for name, info in table.items():
        if name not in settings:
            continue
        value = settings[name]
        if info.kind == "bool":
            flag = info.true_flag if value else info.false_flag
            if flag is None:
                raise EngineError(f"{adapter.name} has no flag to set {name} to {value}")
            argv.append(flag)
        else:
            argv.extend([f"--{name}", _format_value(value)])
    return argv


def _format_value(value: SettingValue) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render_launch(
    adapter: EngineAdapter,
    candidate: Candidate,
    model: ModelSpec,
    gpu: GpuSpec,
    placement: Placement,
    port: int,
) -> LaunchSpec:
    """The exact argv (no shell) that starts `candidate` on `placement`, listening on `port`."""
    flags = setting_flags(
        adapter, minimal_settings(adapter, candidate.settings_dict(), model, gpu)
    )
    argv = [*adapter.base_argv(candidate), *adapter.port_flags(placement.host, port), *flags]
    devices = ",".join(str(i) for i in placement.gpu_ids)
    return LaunchSpec(argv=tuple(argv), env=(("CUDA_VISIBLE_DEVICES", devices),), port=port)


def serve_command(
    adapter: EngineAdapter, candidate: Candidate, model: ModelSpec, gpu: GpuSpec
) -> str:
    """The shortest command line that starts `candidate` (default host and port)."""
    flags = setting_flags(
        adapter, minimal_settings(adapter, candidate.settings_dict(), model, gpu)
    )
    return shlex.join([*adapter.base_argv(candidate), *flags])

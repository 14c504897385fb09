"""What every engine adapter provides, and the shared machinery built on it.

An adapter is bound to one engine release. It knows that release's settings (a catalogue of
`SettingInfo`: name, type, default, valid values, whether it is a flag, an environment variable
or a config-file key, and the versions where it exists), the engine's defaults on given
hardware (`effective_settings`), the engine's own argument validation with its real error text
(`validate`), the engine-neutral `ServingConfig` the simulator consumes, and how a launch looks
(argv, env, files). Adapters are pure: no I/O, no processes.

What follows from an adapter's `effective_settings` (minimal settings, launches, serve
commands) lives in `runners.engines.launches`.
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import yaml

from runners.catalog import GpuSpec, ModelSpec
from runners.engines.parallel import Parallelism
from runners.engines.versions import ALWAYS, Version, VersionRange, parse_version
from runners.errors import EngineError
from runners.types import (
    Candidate,
    Crash,
    NodeGroup,
    ServingConfig,
    SettingValue,
    WeightDtype,
)

SettingKind = Literal["int", "float", "bool", "choice"]
SettingSource = Literal["flag", "env", "config"]


@dataclass(frozen=True)
class SettingInfo:
    """One engine setting as one range of engine releases knows it.

    `name` is what a space file writes (the flag without dashes, the environment variable, or
    the config-file key). `source` says how it reaches the engine and `key` is the exact
    spelling there (``--max-num-seqs``, ``VLLM_ATTENTION_BACKEND``,
    ``kv_cache_config.enable_block_reuse``). `default` is the static default (None when it is
    derived at start-up; `default_note` then says how). `choices` lists valid values for
    ``choice`` settings (and optionally extra values for ints, e.g. -1, or the only accepted
    value of a bool). For ``bool`` flags, `true_flag` / `false_flag` are the spellings (None =
    the engine has no flag for that value). `versions` is where the setting exists.
    """

    name: str
    kind: SettingKind
    help: str
    choices: tuple[SettingValue, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    true_flag: str | None = None
    false_flag: str | None = None
    source: SettingSource = "flag"
    key: str = ""
    default: SettingValue | None = None
    default_note: str = ""
    versions: VersionRange = ALWAYS
    aliases: tuple[str, ...] = ()
    note: str = ""

    @property
    def spelling(self) -> str:
        """The flag, environment variable or config key this setting is written as."""
        if self.key:
            return self.key
        return f"--{self.name}" if self.source == "flag" else self.name

    def check(self, value: SettingValue) -> str | None:
        """Return why `value` is invalid for this setting, or None when it is valid."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                return f"expected true or false, got {value!r}"
            if self.choices and value not in self.choices:
                return f"{value!r} is not accepted: {self.note or f'only {list(self.choices)}'}"
            return None
        if self.kind == "choice":
            if any(type(value) is type(c) and value == c for c in self.choices):
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

    def describe_values(self) -> str:
        """Valid values in words, for the README table and error messages."""
        if self.kind == "bool":
            return "true" if self.choices == (True,) else "true, false"
        if self.kind == "choice":
            return ", ".join(str(c) for c in self.choices)
        low = "" if self.minimum is None else f"{self.minimum:g}"
        high = "" if self.maximum is None else f"{self.maximum:g}"
        extra = "".join(f" or {c}" for c in self.choices)
        kind = "integer" if self.kind == "int" else "number"
        if low and high:
            return f"{kind} {low}..{high}{extra}"
        if low:
            return f"{kind} >= {low}{extra}"
        return f"{kind}{extra}"

    def describe_default(self) -> str:
        if self.default_note:
            return self.default_note
        if self.default is None:
            return "unset"
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)


@dataclass(frozen=True)
class LaunchParts:
    """An engine's launch before the shared wrapping: argv, env and files."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    health_path: str = "/health"
    api_prefix: str = "/v1"


@dataclass(frozen=True)
class NodeRole:
    """One node's part in an instance that spans `nodes` nodes: its `rank` (0 serves), the
    address and port of rank 0's distributed rendezvous (`head`, `dist_port`; port 0: the
    engine's default), every node's (address, GPU count) in rank order, and the variable that
    names a node's devices (the GPU spec's)."""

    rank: int
    nodes: int
    head: str
    dist_port: int
    layout: tuple[tuple[str, int], ...]
    device_env: str

    @property
    def world(self) -> int:
        return sum(gpus for _, gpus in self.layout)


class EngineAdapter(abc.ABC):
    """One serving engine at one release. Subclasses are pure and stateless after init."""

    name: str
    supported: tuple[VersionRange, ...]
    newest: str
    default_port: int = 8000
    ports_per_instance: int = 1
    """Consecutive ports one instance listens on from its own port (MindIE: 3)."""

    def __init__(self, version: str | None = None) -> None:
        parsed = parse_version(version or self.newest)
        if not any(line.contains(parsed) for line in self.supported):
            raise EngineError(
                f"{self.name} version {version!r} is not in the catalogue; supported: "
                f"{self.supported_text()}"
            )
        self.version: Version = parsed
        self._settings = {
            info.name: info for info in self.catalogue() if info.versions.contains(parsed)
        }

    @classmethod
    def supported_text(cls) -> str:
        return ", ".join(line.describe() for line in cls.supported)

    @classmethod
    @abc.abstractmethod
    def catalogue(cls) -> tuple[SettingInfo, ...]:
        """Every setting of every supported release (one entry per version range)."""

    def settings(self) -> Mapping[str, SettingInfo]:
        """The settings of this release, by name, in catalogue order."""
        return self._settings

    def canonical_name(self, name: str) -> str | None:
        """The catalogue name for `name` or one of its spellings (``_``/``-``, aliases)."""
        if name in self._settings:
            return name
        for variant in (name.replace("_", "-"), name.replace("-", "_"), name.lstrip("-")):
            if variant in self._settings:
                return variant
        for info in self._settings.values():
            if name in info.aliases or name.replace("_", "-") in info.aliases:
                return info.name
        return None

    def normalize(self, settings: Mapping[str, SettingValue]) -> dict[str, SettingValue]:
        """Settings keyed by catalogue name; `EngineError` naming the closest valid name."""
        out: dict[str, SettingValue] = {}
        for name, value in settings.items():
            canonical = self.canonical_name(name)
            if canonical is None:
                raise EngineError(self.unknown_setting(name))
            out[canonical] = value
        return out

    def unknown_setting(self, name: str) -> str:
        """Why `name` is not a setting of this release, and what to write instead."""
        head = f"{self.name} {self.version} has no setting {name!r}"
        elsewhere = [i for i in self.catalogue() if i.name == name]
        if elsewhere:
            spans = ", ".join(i.versions.describe() for i in elsewhere)
            hint = f"; it exists only in {self.name} {spans}"
            replacement = next((i.note for i in elsewhere if i.note), "")
            return head + hint + (f" ({replacement})" if replacement else "")
        close = difflib.get_close_matches(name, list(self._settings), n=1)
        if close:
            return f"{head}; did you mean {close[0]!r}?"
        return f"{head}; known settings: {', '.join(self._settings)}"

    @abc.abstractmethod
    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        """The value of every setting when the engine starts with `explicit` on `gpu`."""

    def with_defaults(
        self,
        explicit: Mapping[str, SettingValue],
        derived: Mapping[str, SettingValue] | None = None,
    ) -> dict[str, SettingValue]:
        """Every setting of this release: the explicit value, else the `derived` default (one
        that depends on the model or hardware), else the catalogue's static default."""
        derived = derived or {}
        out: dict[str, SettingValue] = {}
        for name, info in self._settings.items():
            if name in explicit:
                value = explicit[name]
            elif name in derived:
                value = derived[name]
            else:
                assert info.default is not None, name
                value = info.default
            out[name] = float(value) if info.kind == "float" else value
        return out

    @abc.abstractmethod
    def parallelism(self, effective: Mapping[str, SettingValue], model: ModelSpec) -> Parallelism:
        """How one instance with these settings is split over GPUs."""

    @abc.abstractmethod
    def validate(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> Crash | None:
        """The engine's own argument checks, as the engine would fail them at start."""

    @abc.abstractmethod
    def to_serving_config(
        self,
        weight_dtype: WeightDtype,
        effective: Mapping[str, SettingValue],
        model: ModelSpec,
        gpu: GpuSpec,
        node_group: NodeGroup,
    ) -> ServingConfig:
        """Translate effective settings into the engine-neutral config the simulator uses."""

    @abc.abstractmethod
    def launch_parts(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int | None,
        devices: tuple[int, ...],
    ) -> LaunchParts:
        """Argv, env and files for `minimal` settings.

        An empty `host` and a None `port` leave the engine's own defaults (no flags), which is
        how the copy-paste serve command is written; `devices` is empty then too.
        """

    @abc.abstractmethod
    def deploy_launch(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int,
    ) -> LaunchParts:
        """One deployed instance listening on `host`:`port`: the engine's own configuration
        file(s) holding the `minimal` settings (`files`, names relative to the instance's
        working directory), and the argv and env that start the engine with them."""

    def container_image(self) -> str:
        """The engine's public container image at this release ("" when there is none)."""
        return ""

    def spans_nodes(self) -> bool:
        """This release can run one instance over several nodes (`multi_node_parts`)."""
        return False

    def multi_node_parts(self, parts: LaunchParts, role: NodeRole) -> LaunchParts:
        """The launch of node `role.rank` of an instance spanning nodes, from the one-node
        launch `parts` (argv empty: nothing to start on that node, the head's launcher reaches
        it). Only for releases that `spans_nodes`."""
        raise EngineError(self.cannot_span_text())

    def cannot_span_text(self) -> str:
        return (
            f"{self.name} {self.version} cannot run one instance over several nodes in this "
            "tool; keep its instances within one node"
        )

    def gpus_per_instance(self, effective: Mapping[str, SettingValue], model: ModelSpec) -> int:
        return self.parallelism(effective, model).gpus

    def replicas(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> int:
        return max(1, node_group.gpus_per_node // self.gpus_per_instance(effective, model))

    def _flag_items(
        self, settings: Mapping[str, SettingValue]
    ) -> Iterator[tuple[str, SettingValue | None]]:
        """(flag, value) of each ``source == "flag"`` setting in catalogue order; a boolean is
        the flag that sets its value, with None."""
        for name, info in self._settings.items():
            if name not in settings or info.source != "flag":
                continue
            value = settings[name]
            if info.kind != "bool":
                yield info.spelling, value
                continue
            spelling = info.true_flag if value else info.false_flag
            if spelling is None:
                raise EngineError(
                    f"{self.name} {self.version} has no flag to set {name} to {value}"
                )
            yield spelling, None

    def flags(self, settings: Mapping[str, SettingValue]) -> list[str]:
        """The ``source == "flag"`` settings as CLI arguments, in catalogue order."""
        argv: list[str] = []
        for flag, value in self._flag_items(settings):
            argv += [flag] if value is None else [flag, format_value(value)]
        return argv

    def flag_config(self, settings: Mapping[str, SettingValue]) -> dict[str, SettingValue]:
        """The ``source == "flag"`` settings as the keys of a ``--config`` YAML (vLLM, SGLang):
        each flag's spelling without its dashes. A boolean is written as the flag that sets it,
        with the value true: both loaders turn ``key: true`` into ``--key`` and may drop a
        ``key: false``, so ``no-enable-prefix-caching: true`` is how false is said."""
        return {
            flag.lstrip("-"): True if value is None else value
            for flag, value in self._flag_items(settings)
        }

    def config_flag_launch(
        self,
        argv: Sequence[str],
        file_name: str,
        minimal: Mapping[str, SettingValue],
        host: str,
        port: int,
    ) -> LaunchParts:
        """`argv` reading the flag settings of `minimal` from the ``--config`` YAML `file_name`
        (vLLM, SGLang); host and port on the command line, environment settings in the env."""
        config = self.flag_config(minimal)
        files: tuple[tuple[str, str], ...] = ()
        if config:
            argv = [*argv, "--config", file_name]
            files = ((file_name, config_yaml(config)),)
        argv = [*argv, *listen_flags(host, port)]
        return LaunchParts(argv=tuple(argv), env=tuple(self.env_vars(minimal)), files=files)

    def env_vars(self, settings: Mapping[str, SettingValue]) -> list[tuple[str, str]]:
        """The ``source == "env"`` settings as environment variables, in catalogue order."""
        out: list[tuple[str, str]] = []
        for name, info in self._settings.items():
            if name in settings and info.source == "env":
                value = settings[name]
                text = ("1" if value else "0") if isinstance(value, bool) else format_value(value)
                out.append((info.spelling, text))
        return out


def listen_flags(host: str | None, port: int | None) -> list[str]:
    """``--host``/``--port`` for engines whose CLI binds with them (omitted: engine default)."""
    flags = ["--host", host] if host else []
    return flags + (["--port", str(port)] if port is not None else [])


def format_value(value: SettingValue) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def check_version(adapter: EngineAdapter, version: str, strict: bool = False) -> str:
    """The canonical spelling of `version` (``0.11`` and ``v0.11.0`` give ``0.11.0``;
    ``0.5.5.post1`` stays ``0.5.5.post1``); `EngineError` when it is no version, or when
    `strict` and `adapter`'s engine has no catalogue for it (otherwise the nearest catalogued
    release applies: `runners.engines.registry.release`)."""
    parsed = parse_version(version)
    if strict and not any(line.contains(parsed) for line in adapter.supported):
        raise EngineError(
            f"{adapter.name} version {version!r} is not in the catalogue; supported: "
            f"{adapter.supported_text()}"
        )
    return parsed.text


def config_yaml(tree: Mapping[str, object]) -> str:
    """A configuration mapping as block YAML, in the given key order."""
    return yaml.safe_dump(dict(tree), sort_keys=False, default_flow_style=False)

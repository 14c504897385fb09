"""The engine registry: every engine the tool knows, found by name (and release).

Place in the data flow: the one place any module asks about an engine. Each engine folder
builds an `EngineEntry`; the four shipped engines are registered below, one line each, and a
test (or a plug-in) may `register` another. `get_entry`, `get_engine` (the adapter of one
release), `adapter_for` (of a `Candidate`) and `sim_policy` answer; an engine that is not
registered, or has no simulator policy when one is asked for, is an `EngineError` naming what
to do, never a silent fallback.

Any release string an engine publishes is accepted: `release` says which catalogued release's
flags, defaults and checks apply to it (the release itself when catalogued, else the nearest
catalogued one), and `get_engine` returns that release's adapter, printing one warning per
process naming the release used (``--strict-versions`` refuses such releases instead, through
`check_version`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache

from runners.engines import mindie, sglang, trtllm, vllm
from runners.engines.base import EngineAdapter
from runners.engines.entry import EngineEntry
from runners.engines.policy import SimPolicy
from runners.engines.versions import Version, nearest_release, parse_version
from runners.errors import EngineError
from runners.types import Candidate

ENTRIES: dict[str, EngineEntry] = {}


def register(entry: EngineEntry) -> EngineEntry:
    """Make `entry` known under its name (an engine may be registered once)."""
    if entry.adapter.name != entry.name:
        raise EngineError(
            f"engine entry {entry.name!r} carries the adapter of {entry.adapter.name!r}"
        )
    known = ENTRIES.get(entry.name)
    if known is not None and known is not entry:
        raise EngineError(f"engine {entry.name!r} is already registered")
    ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Forget engine `name` (tests that registered a toy engine clean up with this)."""
    ENTRIES.pop(name, None)
    get_engine.cache_clear()


register(vllm.ENTRY)
register(sglang.ENTRY)
register(trtllm.ENTRY)
register(mindie.ENTRY)


def engine_names() -> tuple[str, ...]:
    return tuple(ENTRIES)


def canonical_engine(name: str) -> str:
    """The registered engine `name` or one of its aliases names (``vllm-ascend`` is vLLM);
    `EngineError` for an unknown one."""
    if name in ENTRIES:
        return name
    for entry in ENTRIES.values():
        if name in entry.aliases:
            return entry.name
    get_entry(name)  # raises, listing the known engines
    return name


def get_entry(name: str) -> EngineEntry:
    entry = ENTRIES.get(name)
    if entry is None:
        raise EngineError(f"unknown engine {name!r}; known engines: {', '.join(ENTRIES)}")
    return entry


@dataclass(frozen=True)
class Release:
    """A release of an engine as asked (`asked`) and the catalogued release whose flags,
    defaults and checks apply to it (`used`; the same release when it is catalogued)."""

    engine: str
    asked: Version
    used: Version

    @property
    def catalogued(self) -> bool:
        return self.asked == self.used

    def notice(self) -> str:
        """The one warning an uncatalogued release gets."""
        return (
            f"{self.engine} {self.asked} is not in the catalogue; the flags, defaults and "
            f"checks of {self.engine} {self.used}, the nearest catalogued release, apply "
            "(--strict-versions refuses uncatalogued releases)"
        )


def release(name: str, version: str | None = None) -> Release:
    """Which catalogued release applies to release `version` of engine `name` (None: the
    newest catalogued); `EngineError` for an unknown engine or a string that is no version."""
    adapter_type = get_entry(name).adapter
    asked = parse_version(version or adapter_type.newest)
    nearest = nearest_release(asked, adapter_type.supported, adapter_type.newest)
    return Release(name, asked, asked if nearest is None else nearest)


_NOTICED: set[tuple[str, Version]] = set()


def _notice_once(found: Release) -> None:
    key = (found.engine, found.asked)
    if found.catalogued or key in _NOTICED:
        return
    _NOTICED.add(key)
    print(f"warning: {found.notice()}", file=sys.stderr)


@cache
def get_engine(name: str, version: str | None = None) -> EngineAdapter:
    """The adapter of engine `name` at release `version` (None: the newest catalogued).

    An uncatalogued release gets the adapter of its nearest catalogued release (`release`),
    with one warning per process naming the release used.
    """
    found = release(name, version)
    _notice_once(found)
    text = version if found.catalogued else found.used.text
    return get_entry(name).adapter(text)


def adapter_for(candidate: Candidate) -> EngineAdapter:
    return get_engine(candidate.engine, candidate.engine_version)


def sim_policy(name: str) -> SimPolicy:
    """How the simulator treats engine `name`; an `EngineError` when it has no policy."""
    policy = get_entry(name).sim_policy
    if policy is None:
        raise EngineError(
            f"engine {name!r} has no simulator policy; the simulator cannot run it. Give its "
            f"registry entry a SimPolicy (runners/engines/{name}/policy.py), or run it with a "
            "real runner (--runner local)"
        )
    return policy


class _Adapters(Mapping[str, type[EngineAdapter]]):
    """The adapter class of every registered engine, by name (a live view of the registry)."""

    def __getitem__(self, name: str) -> type[EngineAdapter]:
        entry = ENTRIES.get(name)
        if entry is None:
            raise KeyError(name)
        return entry.adapter

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(ENTRIES))

    def __len__(self) -> int:
        return len(ENTRIES)


ADAPTERS: Mapping[str, type[EngineAdapter]] = _Adapters()


__all__ = [
    "ADAPTERS",
    "ENTRIES",
    "Release",
    "adapter_for",
    "canonical_engine",
    "engine_names",
    "get_engine",
    "get_entry",
    "register",
    "release",
    "sim_policy",
    "unregister",
]

"""The engine registry: every engine the tool knows, found by name and release.

`get_engine(name, version)` returns the adapter of one engine release; `adapter_for` does the
same for a `Candidate`. Every other module asks here; an engine that is not registered is an
`EngineError` naming the registered ones, never a silent fallback.
"""

from __future__ import annotations

from functools import cache

from runners.engines.base import EngineAdapter
from runners.engines.mindie import MindieAdapter
from runners.engines.sglang import SglangAdapter
from runners.engines.trtllm import TrtllmAdapter
from runners.engines.vllm import VllmAdapter
from runners.errors import EngineError
from runners.types import Candidate

ADAPTERS: dict[str, type[EngineAdapter]] = {
    "vllm": VllmAdapter,
    "sglang": SglangAdapter,
    "trtllm": TrtllmAdapter,
    "mindie": MindieAdapter,
}


@cache
def get_engine(name: str, version: str | None = None) -> EngineAdapter:
    """The adapter of engine `name` at release `version` (None: the newest catalogued)."""
    adapter = ADAPTERS.get(name)
    if adapter is None:
        raise EngineError(f"unknown engine {name!r}; known engines: {', '.join(ADAPTERS)}")
    return adapter(version)


def adapter_for(candidate: Candidate) -> EngineAdapter:
    return get_engine(candidate.engine, candidate.engine_version)

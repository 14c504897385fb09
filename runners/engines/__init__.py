"""Engine adapters by name and release, and the operations the rest of the code needs from them.

`get_engine(name, version)` returns the adapter of one engine release (the catalogue of its
settings, defaults, checks and launch). On a `Candidate`: `resolve` gives the engine-neutral
`ServingConfig` the simulator consumes (or the `Crash` the engine's own argument checks
produce), `render` the exact `LaunchSpec` (argv, env, files, port, URLs), `serve_command` the
copy-paste command line; `classify` maps a failed engine's exit code and log to a `CrashClass`.
Candidate settings may use any spelling the engine accepts (``max_num_seqs`` for
``max-num-seqs``, ``kv_cache_free_gpu_memory_fraction`` for ``free_gpu_memory_fraction``).
"""

from __future__ import annotations

from functools import cache

from runners.catalog import get_gpu, get_model
from runners.engines.base import (
    EngineAdapter,
    Parallelism,
    SettingInfo,
    check_version,
    default_in_context,
    minimal_settings,
    render_launch,
)
from runners.engines.base import serve_command as _serve_command
from runners.engines.classify import classify as _classify
from runners.engines.mindie import MindieAdapter
from runners.engines.sglang import SglangAdapter
from runners.engines.trtllm import TrtllmAdapter
from runners.engines.versions import Version, VersionRange, parse_version
from runners.engines.vllm import VllmAdapter
from runners.errors import EngineError
from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    LaunchSpec,
    NodeGroup,
    Placement,
    ServingConfig,
    SettingValue,
)

ADAPTERS: dict[str, type[EngineAdapter]] = {
    "vllm": VllmAdapter,
    "sglang": SglangAdapter,
    "trtllm": TrtllmAdapter,
    "mindie": MindieAdapter,
}
ENGINES = ADAPTERS


@cache
def get_engine(name: str, version: str | None = None) -> EngineAdapter:
    """The adapter of engine `name` at release `version` (None: the newest catalogued)."""
    adapter = ADAPTERS.get(name)
    if adapter is None:
        raise EngineError(f"unknown engine {name!r}; known engines: {', '.join(ADAPTERS)}")
    return adapter(version)


def adapter_for(candidate: Candidate) -> EngineAdapter:
    return get_engine(candidate.engine, candidate.engine_version)


def resolve(candidate: Candidate, node_group: NodeGroup) -> ServingConfig | Crash:
    """Apply the engine's defaults and argument checks to `candidate` on `node_group`."""
    adapter = adapter_for(candidate)
    model = get_model(candidate.model)
    gpu = get_gpu(node_group.gpu)
    effective = adapter.effective_settings(candidate.settings_dict(), model, gpu)
    crash = adapter.validate(effective, model, node_group)
    if crash is not None:
        return crash
    return adapter.to_serving_config(candidate, effective, model, gpu, node_group)


def render(candidate: Candidate, placement: Placement, port: int | None = None) -> LaunchSpec:
    """The exact launch of `candidate` on `placement` (`port` None: the engine's default)."""
    adapter = adapter_for(candidate)
    model = get_model(candidate.model)
    gpu = get_gpu(placement.node_group.gpu)
    return render_launch(adapter, candidate, model, gpu, placement, port)


def launch_spec(candidate: Candidate, placement: Placement, port: int) -> LaunchSpec:
    return render(candidate, placement, port)


def serve_command(candidate: Candidate, node_group: NodeGroup) -> str:
    adapter = adapter_for(candidate)
    return _serve_command(adapter, candidate, get_model(candidate.model), get_gpu(node_group.gpu))


def candidate_minimal_settings(
    candidate: Candidate, node_group: NodeGroup
) -> dict[str, SettingValue]:
    """The candidate's settings minus those equal to the engine's defaults (for display)."""
    adapter = adapter_for(candidate)
    return dict(
        minimal_settings(
            adapter,
            candidate.settings_dict(),
            get_model(candidate.model),
            get_gpu(node_group.gpu),
        )
    )


def classify(engine: str, exit_code: int | None, log_text: str) -> CrashClass:
    """Why engine `engine` failed, from its exit code (None = still running) and its log."""
    if engine not in ADAPTERS:
        raise EngineError(f"unknown engine {engine!r}; known engines: {', '.join(ADAPTERS)}")
    return _classify(engine, exit_code, log_text)  # type: ignore[arg-type]


__all__ = [
    "ADAPTERS",
    "ENGINES",
    "EngineAdapter",
    "Parallelism",
    "SettingInfo",
    "Version",
    "VersionRange",
    "adapter_for",
    "candidate_minimal_settings",
    "check_version",
    "classify",
    "default_in_context",
    "get_engine",
    "launch_spec",
    "minimal_settings",
    "parse_version",
    "render",
    "resolve",
    "serve_command",
]

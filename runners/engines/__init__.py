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
from runners.engines.classify import classify as _classify
from runners.engines.registry import ADAPTERS, adapter_for, get_engine
from runners.engines.resolved import Resolved, resolve_candidate
from runners.engines.versions import Version, VersionRange, parse_version
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

ENGINES = ADAPTERS


def resolve(candidate: Candidate, node_group: NodeGroup) -> ServingConfig | Crash:
    """Apply the engine's defaults and argument checks to `candidate` on `node_group`."""
    resolved = resolve_candidate(candidate, node_group)
    if resolved.problem is not None:
        return resolved.problem
    assert resolved.config is not None
    return resolved.config


def render(candidate: Candidate, placement: Placement, port: int | None = None) -> LaunchSpec:
    """The exact launch of `candidate` on `placement` (`port` None: the engine's default)."""
    adapter = adapter_for(candidate)
    model = get_model(candidate.model)
    gpu = get_gpu(placement.node_group.gpu)
    return render_launch(adapter, candidate, model, gpu, placement, port)


def launch_spec(candidate: Candidate, placement: Placement, port: int) -> LaunchSpec:
    return render(candidate, placement, port)


def serve_command(candidate: Candidate, node_group: NodeGroup) -> str:
    return resolve_candidate(candidate, node_group).serve_command


def candidate_minimal_settings(
    candidate: Candidate, node_group: NodeGroup
) -> dict[str, SettingValue]:
    """The candidate's settings minus those equal to the engine's defaults (for display)."""
    return resolve_candidate(candidate, node_group).minimal_dict()


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
    "Resolved",
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
    "resolve_candidate",
    "serve_command",
]

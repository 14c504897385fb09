"""Engine adapters by name, and the two operations the rest of the code needs from them.

`resolve` turns a `Candidate` on a node group into the engine-neutral `ServingConfig` the
simulator consumes (or the `Crash` the engine's own argument checks would produce);
`launch_spec` and `serve_command` render it as the exact command line.
"""

from __future__ import annotations

from runners.catalog import get_gpu, get_model
from runners.engines.base import (
    EngineAdapter,
    SettingInfo,
    check_version,
    default_in_context,
    minimal_settings,
    render_launch,
)
from runners.engines.base import serve_command as _serve_command
from runners.engines.sglang import SglangAdapter
from runners.engines.vllm import VllmAdapter
from runners.errors import EngineError
from runners.types import Candidate, Crash, LaunchSpec, NodeGroup, Placement, ServingConfig

ENGINES: dict[str, EngineAdapter] = {"vllm": VllmAdapter(), "sglang": SglangAdapter()}


def get_engine(name: str) -> EngineAdapter:
    adapter = ENGINES.get(name)
    if adapter is None:
        raise EngineError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")
    return adapter


def resolve(candidate: Candidate, node_group: NodeGroup) -> ServingConfig | Crash:
    """Apply the engine's defaults and argument checks to `candidate` on `node_group`."""
    adapter = get_engine(candidate.engine)
    model = get_model(candidate.model)
    gpu = get_gpu(node_group.gpu)
    effective = adapter.effective_settings(candidate.settings_dict(), model, gpu)
    crash = adapter.validate(effective, model, node_group)
    if crash is not None:
        return crash
    return adapter.to_serving_config(candidate, effective, model, gpu, node_group)


def launch_spec(candidate: Candidate, placement: Placement, port: int) -> LaunchSpec:
    adapter = get_engine(candidate.engine)
    model = get_model(candidate.model)
    gpu = get_gpu(placement.node_group.gpu)
    return render_launch(adapter, candidate, model, gpu, placement, port)


def serve_command(candidate: Candidate, node_group: NodeGroup) -> str:
    adapter = get_engine(candidate.engine)
    return _serve_command(adapter, candidate, get_model(candidate.model), get_gpu(node_group.gpu))


__all__ = [
    "ENGINES",
    "EngineAdapter",
    "SettingInfo",
    "check_version",
    "default_in_context",
    "get_engine",
    "launch_spec",
    "minimal_settings",
    "resolve",
    "serve_command",
]

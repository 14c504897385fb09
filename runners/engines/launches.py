"""Launches and command lines of a candidate, derived from its engine adapter.

Place in the data flow: `runners.engines.resolved` (a candidate resolved once), the runners'
launches and the export call these. From an adapter's `effective_settings` follow the engine
default of one setting in context (`default_in_context`), the minimal set of settings that
reproduces a configuration (`minimal_settings`), the exact launch (`render_launch`,
`serve_command`), the launch of a deployed instance whose settings live in the engine's own
configuration file (`render_deploy`: a ``--config`` YAML, an extra-options YAML, a
config.json); an instance that spans nodes gets one launch per node (`render_node_launches`,
through the adapter's `multi_node_parts` for releases that `spans_nodes`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from runners.catalog import GpuSpec, ModelSpec
from runners.engines.base import EngineAdapter, LaunchParts, NodeRole, format_value
from runners.errors import EngineError
from runners.types import Candidate, LaunchSpec, Placement, SettingValue


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
    explicit = adapter.normalize(explicit)
    target = adapter.effective_settings(explicit, model, gpu)
    kept = dict(explicit)
    for name in list(explicit):
        trial = {k: v for k, v in kept.items() if k != name}
        if adapter.effective_settings(trial, model, gpu) == target:
            kept = trial
    return kept


def setting_flags(adapter: EngineAdapter, settings: Mapping[str, SettingValue]) -> list[str]:
    """Render flag settings as CLI arguments in the adapter's catalogue order."""
    return adapter.flags(adapter.normalize(settings))


def _minimal_and_effective(
    adapter: EngineAdapter, candidate: Candidate, model: ModelSpec, gpu: GpuSpec
) -> tuple[dict[str, SettingValue], dict[str, SettingValue]]:
    """The candidate's minimal settings (what a command line must say) and effective ones."""
    explicit = adapter.normalize(candidate.settings_dict())
    minimal = minimal_settings(adapter, explicit, model, gpu)
    return minimal, adapter.effective_settings(explicit, model, gpu)


def _launch_spec(
    parts: LaunchParts, gpu: GpuSpec, devices: tuple[int, ...], host: str, port: int
) -> LaunchSpec:
    """`parts` started on `devices` (named by the GPU's visibility variable)."""
    return LaunchSpec(
        argv=parts.argv,
        env=((gpu.visible_devices_env, ",".join(str(i) for i in devices)), *parts.env),
        port=port,
        health_path=parts.health_path,
        host=host,
        files=parts.files,
        api_prefix=parts.api_prefix,
    )


def render_launch(
    adapter: EngineAdapter,
    candidate: Candidate,
    model: ModelSpec,
    gpu: GpuSpec,
    placement: Placement,
    port: int | None = None,
) -> LaunchSpec:
    """The exact launch (argv without shell, env, files) of `candidate` on `placement`."""
    minimal, effective = _minimal_and_effective(adapter, candidate, model, gpu)
    port = port or adapter.default_port
    parts = adapter.launch_parts(
        candidate, minimal, effective, placement.host, port, placement.gpu_ids
    )
    return _launch_spec(parts, gpu, placement.gpu_ids, placement.host, port)


def render_node_launches(
    adapter: EngineAdapter,
    candidate: Candidate,
    model: ModelSpec,
    gpu: GpuSpec,
    placement: Placement,
    port: int | None = None,
) -> tuple[LaunchSpec, ...]:
    """The launch on every node `placement` holds, rank 0 (the one that serves) first: one
    `render_launch` on one node; over several, each node's part (`multi_node_parts`) with its
    own devices. A node whose argv is empty has nothing to start (the head's launcher reaches
    it)."""
    if not placement.others:
        return (render_launch(adapter, candidate, model, gpu, placement, port),)
    if not adapter.spans_nodes():
        raise EngineError(adapter.cannot_span_text())
    minimal, effective = _minimal_and_effective(adapter, candidate, model, gpu)
    port = port or adapter.default_port
    nodes = placement.nodes
    layout = tuple((node.host, len(node.gpu_ids)) for node in nodes)
    launches: list[LaunchSpec] = []
    for rank, node in enumerate(nodes):
        parts = adapter.launch_parts(
            candidate, minimal, effective, placement.host, port, node.gpu_ids
        )
        role = NodeRole(
            rank, len(nodes), nodes[0].host, placement.dist_port, layout, gpu.visible_devices_env
        )
        parts = adapter.multi_node_parts(parts, role)
        launches.append(_launch_spec(parts, gpu, node.gpu_ids, placement.host, port))
    return tuple(launches)


def render_deploy(
    adapter: EngineAdapter,
    candidate: Candidate,
    model: ModelSpec,
    gpu: GpuSpec,
    host: str,
    port: int,
) -> LaunchParts:
    """The deployed launch of `candidate` on `host`:`port`, its settings in the engine's own
    configuration file (the same minimal settings as the serve command)."""
    explicit = adapter.normalize(candidate.settings_dict())
    minimal = minimal_settings(adapter, explicit, model, gpu)
    effective = adapter.effective_settings(explicit, model, gpu)
    return adapter.deploy_launch(candidate, minimal, effective, host, port)


def serve_command(
    adapter: EngineAdapter, candidate: Candidate, model: ModelSpec, gpu: GpuSpec
) -> str:
    """The shortest command line that starts `candidate` (default host and port).

    Environment settings are prefixed (``VLLM_ATTENTION_BACKEND=FLASHINFER vllm serve ...``);
    config-file settings are in the file the command names.
    """
    minimal, effective = _minimal_and_effective(adapter, candidate, model, gpu)
    parts = adapter.launch_parts(candidate, minimal, effective, "", None, ())
    return _command_line(adapter, parts, minimal)


def multi_node_serve_command(
    adapter: EngineAdapter,
    candidate: Candidate,
    model: ModelSpec,
    gpu: GpuSpec,
    nodes: int,
    gpus_per_node: int,
) -> str:
    """The shortest command lines that start `candidate` as one instance over `nodes` nodes:
    ``[node 0] ... [node 1] ...``, node r reached at ``NODE<r>_IP`` (a node with nothing to
    start, whose processes the head's launcher starts, is left out)."""
    minimal, effective = _minimal_and_effective(adapter, candidate, model, gpu)
    layout = tuple((f"NODE{rank}_IP", gpus_per_node) for rank in range(nodes))
    lines: list[str] = []
    for rank in range(nodes):
        parts = adapter.launch_parts(candidate, minimal, effective, "", None, ())
        role = NodeRole(rank, nodes, layout[0][0], 0, layout, gpu.visible_devices_env)
        parts = adapter.multi_node_parts(parts, role)
        if parts.argv:
            lines.append(f"[node {rank}] {_command_line(adapter, parts, minimal)}")
    return " ".join(lines)


def _command_line(
    adapter: EngineAdapter, parts: LaunchParts, minimal: Mapping[str, SettingValue]
) -> str:
    env = [f"{k}={shlex.quote(v)}" for k, v in parts.env]
    command = " ".join([*env, shlex.join(parts.argv)])
    table = adapter.settings()
    in_file = [
        f"{table[n].spelling}={format_value(v)}"
        for n, v in minimal.items()
        if table[n].source == "config"
    ]
    if in_file and parts.files:
        command += f"  # {parts.files[0][0]}: {', '.join(in_file)}"
    return command

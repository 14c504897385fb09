"""Engines by name and release, and the operations the rest of the code needs from them.

Each engine has one folder (runners/engines/<name>/) holding its registry entry: the release
catalogue, defaults, argument checks and static rules, crash signatures, launch rendering and
simulator policy; `registry` registers them. This module is the facade other packages use:
`get_engine(name, version)` returns the adapter of one release; on a `Candidate`, `resolve`
gives the engine-neutral `ServingConfig` the simulator consumes (or the `Crash` of the engine's
own argument checks), `render` the exact `LaunchSpec` (argv, env, files, port, URLs),
`serve_command` the copy-paste command line, `render_nodes` the launch on every node of an
instance that spans nodes, `deploy` the launch of a deployed instance whose settings live in the
engine's own configuration file; `diagnose` turns a failed engine's exit
code and log into a `Crash` (class and root cause); `rule_breaks` / `simulator_check` ask the
static rules. Candidate settings may use any spelling the engine accepts (``max_num_seqs`` for
``max-num-seqs``, ``kv_cache_free_gpu_memory_fraction`` for ``free_gpu_memory_fraction``).
Modules inside runners/engines import from the submodules, never from here.
"""

from __future__ import annotations

from runners.catalog import get_gpu, get_model
from runners.engines.base import (
    EngineAdapter,
    LaunchParts,
    NodeRole,
    SettingInfo,
    check_version,
    listen_flags,
)
from runners.engines.diagnose import classify, diagnose, root_cause
from runners.engines.entry import CommandLine, EngineEntry
from runners.engines.launches import (
    default_in_context,
    minimal_settings,
    render_deploy,
    render_launch,
    render_node_launches,
)
from runners.engines.parallel import Parallelism
from runners.engines.policy import EngineCosts, SchedulerKind, SimPolicy
from runners.engines.registry import (
    ADAPTERS,
    Release,
    adapter_for,
    canonical_engine,
    engine_names,
    get_engine,
    get_entry,
    register,
    release,
    sim_policy,
    unregister,
)
from runners.engines.resolved import Resolved, resolve_candidate
from runners.engines.rules import Rule, RuleBreak
from runners.engines.static_check import rule_breaks, simulator_check
from runners.engines.topology import instance_nodes, network_gb_s, with_topology
from runners.engines.versions import Version, VersionRange, parse_version
from runners.types import (
    Candidate,
    Crash,
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


def deploy(candidate: Candidate, node_group: NodeGroup, host: str, port: int) -> LaunchParts:
    """One deployed instance of `candidate` on `node_group`'s GPU, listening on `host`:`port`:
    the engine's own configuration file(s), and the argv and env that start it with them."""
    adapter = adapter_for(candidate)
    model = get_model(candidate.model)
    gpu = get_gpu(node_group.gpu)
    return render_deploy(adapter, candidate, model, gpu, host, port)


def render_nodes(
    candidate: Candidate, placement: Placement, port: int | None = None
) -> tuple[LaunchSpec, ...]:
    """The launch on every node of `placement`, rank 0 (the one that serves) first; one
    launch when it holds one node. An engine release that cannot span nodes is an
    `EngineError`."""
    adapter = adapter_for(candidate)
    model = get_model(candidate.model)
    gpu = get_gpu(placement.node_group.gpu)
    return render_node_launches(adapter, candidate, model, gpu, placement, port)


def serve_command(candidate: Candidate, node_group: NodeGroup) -> str:
    return resolve_candidate(candidate, node_group).serve_command


def candidate_minimal_settings(
    candidate: Candidate, node_group: NodeGroup
) -> dict[str, SettingValue]:
    """The candidate's settings minus those equal to the engine's defaults (for display)."""
    return resolve_candidate(candidate, node_group).minimal_dict()


__all__ = [
    "ADAPTERS",
    "ENGINES",
    "CommandLine",
    "EngineAdapter",
    "EngineCosts",
    "EngineEntry",
    "LaunchParts",
    "NodeRole",
    "Parallelism",
    "Release",
    "Resolved",
    "Rule",
    "RuleBreak",
    "SchedulerKind",
    "SettingInfo",
    "SimPolicy",
    "Version",
    "VersionRange",
    "adapter_for",
    "candidate_minimal_settings",
    "canonical_engine",
    "check_version",
    "classify",
    "default_in_context",
    "deploy",
    "diagnose",
    "engine_names",
    "get_engine",
    "get_entry",
    "instance_nodes",
    "launch_spec",
    "listen_flags",
    "minimal_settings",
    "network_gb_s",
    "parse_version",
    "register",
    "release",
    "render",
    "render_deploy",
    "render_nodes",
    "resolve",
    "resolve_candidate",
    "root_cause",
    "rule_breaks",
    "serve_command",
    "sim_policy",
    "simulator_check",
    "unregister",
    "with_topology",
]

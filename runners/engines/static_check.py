"""The one place the static rules are asked: by pre-flight (from settings) and by the simulator.

Place in the data flow: pre-flight (optimizer.constraints) calls `rule_breaks` with a
candidate's effective settings and records ``rejected:<rule id>`` for the rules marked
`preflight`; the simulator calls `simulator_check` with a `ServingConfig` and records the
first break as the runner's crash. Both read the rules of the engine's registry entry, so a
rule, its id and its engine text exist once.
"""

from __future__ import annotations

from collections.abc import Mapping

from runners.catalog import GpuSpec, ModelSpec, Quantization
from runners.engines.base import EngineAdapter
from runners.engines.quantized import with_quantization
from runners.engines.registry import get_entry, sim_policy
from runners.engines.rules import RuleBreak, Subject, breaks, first_break
from runners.engines.topology import with_topology
from runners.types import NodeGroup, ServingConfig, SettingValue


def rule_breaks(
    adapter: EngineAdapter,
    effective: Mapping[str, SettingValue],
    model: ModelSpec,
    gpu: GpuSpec,
    node_group: NodeGroup,
    quantization: Quantization,
    preflight_only: bool = True,
) -> list[RuleBreak]:
    """The static rules these effective settings break on `node_group` with a checkpoint
    quantized as `quantization`, in rule order (`preflight_only`: just the rules pre-flight
    rejects on)."""
    config = with_topology(
        with_quantization(
            adapter.to_serving_config(quantization.storage, effective, model, gpu, node_group),
            quantization,
        ),
        node_group,
    )
    subject = Subject(config, adapter.parallelism(effective, model), node_group)
    return breaks(get_entry(adapter.name).rules, subject, preflight_only)


def simulator_check(config: ServingConfig) -> RuleBreak | None:
    """The first static rule `config` breaks (what the engine dies of at start), or None.

    The split is rebuilt from the config with the engine's simulator policy.
    """
    subject = Subject(config, sim_policy(config.engine).split(config))
    return first_break(get_entry(config.engine).rules, subject)


__all__ = ["rule_breaks", "simulator_check"]

"""How one engine instance sits on the nodes of its node group.

Place in the data flow: when a candidate is resolved (`runners.engines.resolved`) or its static
rules are asked (`runners.engines.static_check`), `with_topology` records on the
`ServingConfig` how many nodes one replica spans and the network between them, so the
simulator can cost the links and the rules can refuse what cannot span. An instance larger
than a node takes the fewest nodes that hold it, with the same number of GPUs on each
(`instance_nodes`), as the engines split their ranks (vLLM ``world_size % nnodes``, SGLang's
TP x PP over ``--nnodes``). The engines' argument checks ask `node_limit_crash` whether an
instance fits the node group at all: on one node (the engine's own text), or over several
nodes when the engine release can span them.
"""

from __future__ import annotations

import dataclasses

from runners.catalog import GpuSpec
from runners.types import Crash, CrashClass, NodeGroup, ServingConfig


def instance_nodes(gpus: int, gpus_per_node: int) -> int:
    """Nodes an instance of `gpus` GPUs spans on nodes of `gpus_per_node` (at least 1)."""
    return max(1, -(-gpus // max(1, gpus_per_node)))


def network_gb_s(node_group: NodeGroup, gpu: GpuSpec) -> float | None:
    """Each GPU's share of the network between the nodes (GB/s, one direction): the node
    group's own `network`, else the GPU's typical figure; None when neither is known."""
    if node_group.inter_node_gb_s is not None:
        return node_group.inter_node_gb_s
    return gpu.inter_node_gb_s


def with_topology(config: ServingConfig, node_group: NodeGroup) -> ServingConfig:
    """`config` with the nodes one replica spans on `node_group` and the network between them
    (unchanged when a replica fits one node)."""
    nodes = instance_nodes(config.gpus_per_replica, node_group.gpus_per_node)
    if nodes == 1:
        return config
    return dataclasses.replace(
        config, nodes=nodes, inter_node_gb_s=network_gb_s(node_group, config.gpu)
    )


def node_limit_crash(
    world: int, node_group: NodeGroup, spans_nodes: bool, one_node_text: str
) -> Crash | None:
    """Whether an instance of `world` GPUs fits `node_group`: on one node, or, when the engine
    release `spans_nodes`, over several of its nodes. `one_node_text` is the engine's own error
    for more GPUs than its node has (what it says when it cannot span, or the group has one
    node)."""
    if world <= node_group.gpus_per_node:
        return None
    if not spans_nodes or node_group.nodes == 1:
        return Crash(CrashClass.TOO_MANY_GPUS, one_node_text)
    if world <= node_group.total_gpus:
        return None
    return Crash(
        CrashClass.TOO_MANY_GPUS,
        f"one instance needs {world} GPUs ({instance_nodes(world, node_group.gpus_per_node)} "
        f"nodes of {node_group.gpus_per_node}); the node group has {node_group.nodes} nodes "
        f"of {node_group.gpus_per_node} GPUs",
    )


__all__ = ["instance_nodes", "network_gb_s", "node_limit_crash", "with_topology"]

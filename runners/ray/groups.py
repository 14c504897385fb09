"""Node groups as Ray sees them: how their nodes are recognised and what the cluster offers.

Place in the data flow: the driver describes each node group of the space file as a
`RayNodeGroup` (a custom resource every node of the group declares, one unit per GPU, and
optionally a node label); `runners.ray.cluster.ray_cluster` declares them on an embedded Ray,
and `runners.ray.pool.RayPool` reads each group's `GroupCapacity` from Ray's node table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runners.types import NodeGroup


@dataclass(frozen=True)
class RayNodeGroup:
    """A node group and how Ray identifies its nodes: a custom resource (one unit per GPU) and,
    optionally, a node label ``(key, value)``."""

    node_group: NodeGroup
    resource: str
    label: tuple[str, str] | None = None


@dataclass(frozen=True)
class GroupCapacity:
    """What the cluster offers a node group: GPUs usable by trials on each of its nodes."""

    name: str
    node_gpus: tuple[tuple[str, int], ...]  # (Ray node id, usable GPUs), largest first

    @property
    def gpus(self) -> int:
        return sum(n for _, n in self.node_gpus)

    @property
    def nodes(self) -> int:
        return len(self.node_gpus)

    @property
    def largest_node_gpus(self) -> int:
        return max((n for _, n in self.node_gpus), default=0)


def group_capacity(group: RayNodeGroup, nodes: list[dict[str, Any]]) -> GroupCapacity:
    """GPUs of `group` on alive nodes (``ray.nodes()``): per node min(GPU, resource), capped by
    the space file's GPUs per node and number of nodes."""
    per_node: list[tuple[str, int]] = []
    for node in nodes:
        if not node.get("Alive", False):
            continue
        resources = node.get("Resources", {})
        labels = node.get("Labels", {}) or {}
        if group.label is not None and labels.get(group.label[0]) != group.label[1]:
            continue
        usable = int(min(resources.get("GPU", 0.0), resources.get(group.resource, 0.0)))
        if usable > 0:
            per_node.append((str(node["NodeID"]), usable))
    per_node.sort(key=lambda item: (-item[1], item[0]))
    capped = [(node_id, min(n, group.node_group.gpus_per_node)) for node_id, n in per_node]
    return GroupCapacity(group.node_group.name, tuple(capped[: group.node_group.nodes]))


def label_text(label: tuple[str, str] | None) -> str:
    return f" and label {label[0]}={label[1]}" if label else ""


def label_flag(label: tuple[str, str] | None) -> str:
    return f" --labels {label[0]}={label[1]}" if label else ""

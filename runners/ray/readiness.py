"""Readiness on Ray: the node-side checks (`runners.readiness`) run on every node of the groups.

Place in the data flow: with ``--runner ray --ray-worker local`` the driver calls
`check_ray_nodes` inside `runners.ray.ray_cluster`, before it builds the `RayPool`. One small
Ray task per node that the pool could place trials on (the groups' alive nodes, as
`runners.ray.groups.group_capacity` finds them), pinned to that node, runs `check_node` in a
Ray worker there: so the answer is about that node's Python environment, files and devices.
A node where the task itself cannot run (e.g. this package is not installed there) is reported
as a problem of that node, never raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runners.ray.groups import RayNodeGroup, group_capacity
from runners.readiness import IMPORT_TIMEOUT_S, NodeReport, ReadinessRequest, check_node


def check_ray_nodes(groups: Sequence[RayNodeGroup], request: ReadinessRequest) -> list[NodeReport]:
    """One report per Ray node of `groups` (in node order)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    names = {str(n["NodeID"]): _node_name(n) for n in nodes}
    node_ids = sorted(
        {node_id for group in groups for node_id, _ in group_capacity(group, nodes).node_gpus}
    )
    task = ray.remote(num_cpus=0, max_retries=0)(_check_here)
    refs = {
        node_id: task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
        ).remote(request, names[node_id])
        for node_id in node_ids
    }
    timeout = IMPORT_TIMEOUT_S * (1 + len(request.programs)) + 120.0
    reports: list[NodeReport] = []
    for node_id, ref in refs.items():
        try:
            reports.append(ray.get(ref, timeout=timeout))
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as exc:
            reports.append(NodeReport(names[node_id], "unknown", (_task_problem(exc),)))
    return reports


def _check_here(request: ReadinessRequest, node: str) -> NodeReport:
    return check_node(request, node)


def _node_name(node: dict[str, Any]) -> str:
    address = node.get("NodeManagerAddress") or node.get("NodeManagerHostname") or "?"
    return f"{address} (Ray node {str(node['NodeID'])[:8]})"


def _task_problem(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = lines[-1] if lines else type(exc).__name__
    return (
        f"the readiness check could not run there ({cause[:300]}); install this package (same "
        "version) and the engine on every node, with the Python that Ray runs"
    )

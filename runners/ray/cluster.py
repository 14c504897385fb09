"""`ray_cluster`: connect to Ray for a study, or start an embedded local Ray that hosts it.

Place in the data flow: the driver (`--runner ray`) enters `ray_cluster(groups, address)` and
builds a `runners.ray.pool.RayPool` inside it. Without an address it starts Ray on this machine
as one node that declares every node group's GPUs and resource (logical GPUs where the machine
has none, which the simulated runner needs) and node labels, with:

- token authentication on: unless the environment already chose (RAY_AUTH_MODE /
  RAY_AUTH_TOKEN), a fresh random token for this process and its workers only;
- ``RAY_kill_child_processes_on_worker_exit=true``, so raylets kill a dead worker's children.
  Ray's subreaper variant is NOT used: with it, every process of the job loses its children's
  exit statuses (subprocess reports 0 for a child that exited 2), which breaks crash
  classification by exit code. Engines started in their own session are killed by the
  per-actor sweeper (`runners.ray.sweeper`) instead;
- no dashboard, no log forwarding to the driver.

Without an address it always starts its own Ray, even when a cluster started with
``ray start`` runs on this machine. With an address ("auto", "ray://host:10001", ...) it joins
an existing cluster, whose nodes must declare the groups' resources. Ray is shut down when
the block ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator, Sequence

from runners.errors import RayPoolError
from runners.ray.groups import RayNodeGroup

CHILD_CLEANUP_ENV = {"RAY_kill_child_processes_on_worker_exit": "true"}
"""Raylets read this at start: kill a dead worker's children."""


@contextlib.contextmanager
def ray_cluster(groups: Sequence[RayNodeGroup], address: str | None = None) -> Iterator[str]:
    """Connect to Ray for the duration of the block; yields a one-line description."""
    import ray

    if ray.is_initialized():
        raise RayPoolError("Ray is already initialized in this process")
    if address is None:
        description = _start_embedded(groups)
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        description = f"Ray cluster at {address}"
    try:
        yield description
    finally:
        ray.shutdown()


def embedded_resources(
    groups: Sequence[RayNodeGroup],
) -> tuple[dict[str, float], dict[str, str]]:
    """(custom resources, node labels) of one local node hosting every group."""
    resources: dict[str, float] = {}
    labels: dict[str, str] = {}
    for group in groups:
        resources[group.resource] = float(group.node_group.total_gpus)
        if group.label is not None:
            if labels.get(group.label[0], group.label[1]) != group.label[1]:
                raise RayPoolError(
                    f"node groups with labels {group.label[0]}={labels[group.label[0]]} and "
                    f"{group.label[0]}={group.label[1]} cannot both be this machine; the "
                    "embedded local Ray is one node (use --ray-address for a cluster)"
                )
            labels[group.label[0]] = group.label[1]
    return resources, labels


def _start_embedded(groups: Sequence[RayNodeGroup]) -> str:
    import ray

    resources, labels = embedded_resources(groups)
    for key, value in CHILD_CLEANUP_ENV.items():
        os.environ.setdefault(key, value)
    if "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
        # Ray caches its configuration (auth mode included) when first imported; refresh
        # it as ray.init does when it turns token auth on by itself.
        from ray._raylet import Config  # type: ignore[attr-defined]

        Config.initialize("")
    total = sum(g.node_group.total_gpus for g in groups)
    ray.init(
        # "local": always a new instance; without an address Ray joins a cluster it finds
        # started on this machine (`ray start`), and then refuses num_gpus and resources
        address="local",
        num_gpus=total,
        resources=resources,
        labels=labels or None,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    return f"embedded local Ray, {total} GPUs in node groups " + ", ".join(
        f"{g.node_group.name} ({g.node_group.total_gpus} x {g.node_group.gpu})" for g in groups
    )

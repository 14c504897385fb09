"""Trials on Ray: the cluster, the device ledger, the per-actor sweeper, the worker and the pool.

Place in the data flow: with ``--runner ray`` the driver enters `ray_cluster` (embedded local
Ray, or an existing cluster), builds a `RayPool` over the space file's node groups
(`RayNodeGroup`) and submits trials to it like to any `runners.pool.TrialPool`. Modules:
`groups` (node groups as Ray sees them), `cluster` (connecting or starting Ray), `ledger` (device
ids per node, shared by every driver of a cluster), `worker` (the one actor per trial),
`sweeper` (a standard-library program that kills what an actor started once it is gone), and
`pool` (placement: best fit, lookahead, release). Importing this package does not import Ray;
each function imports it when called.
"""

from runners.ray.cluster import ray_cluster
from runners.ray.groups import GroupCapacity, RayNodeGroup
from runners.ray.ledger import LEDGER_NAME, LEDGER_NAMESPACE, DeviceLedger
from runners.ray.pool import RayPool
from runners.ray.worker import TRIAL_TAG_ENV, TrialWorker

__all__ = [
    "LEDGER_NAME",
    "LEDGER_NAMESPACE",
    "TRIAL_TAG_ENV",
    "DeviceLedger",
    "GroupCapacity",
    "RayNodeGroup",
    "RayPool",
    "TrialWorker",
    "ray_cluster",
]

"""`DeviceLedger`: which device ids of which Ray node are held, and by which placement group.

Place in the data flow: `runners.ray.pool.RayPool` asks it for device ids on the node it chose
for a trial, before starting the trial's actor, and releases them when the trial ends. Why the
pool, not Ray, picks device ids: Ray 2.60 reserves GPU counts correctly, but on a busy node it
can report to a new actor GPU ids that a live placement group still holds (seen on a two-raylet
cluster in 5 runs of 6). Ray still does the counting (nothing else Ray schedules can take those
GPUs); the ids come from this ledger, one named, detached actor per Ray cluster that every
driver of every study shares (`ledger_actor`), so two trials never get the same device even
when several drivers share the node groups. A driver that dies leaves entries behind; they are
dropped once their placement group is gone. Ray device ids are assumed to be 0..n-1 on each
node (`ray start --num-gpus n` on a node that sees all its GPUs).
"""

from __future__ import annotations

from typing import Any

LEDGER_NAME = "serving-optimizer-device-ledger"
LEDGER_NAMESPACE = "serving-optimizer"


class DeviceLedger:
    """Which device ids of which node are held, and by which owner (placement group hex id).

    Entries whose placement group no longer exists (a driver that died without releasing) are
    dropped when a node runs short.
    """

    def __init__(self) -> None:
        self.held: dict[str, dict[int, str]] = {}  # node id -> device id -> owner

    def allocate(self, node_id: str, node_gpus: int, count: int, owner: str) -> list[int] | None:
        """`count` free device ids of `node_id` for `owner`, contiguous when possible (NVLink
        islands); None when the node has fewer free ids."""
        found = self.allocate_nodes([(node_id, node_gpus)], count, owner)
        return None if found is None else found[0]

    def allocate_nodes(
        self, nodes: list[tuple[str, int]], count: int, owner: str
    ) -> list[list[int]] | None:
        """`count` device ids on each of `nodes` ((node id, its GPUs), one instance spanning
        them) for `owner`: the same ids on every node (an MPI launch names one device list for
        all), contiguous when possible; None when the nodes have no such ids free in common."""
        helds = [self.held.setdefault(node_id, {}) for node_id, _ in nodes]
        if any(gpus - len(held) < count for (_, gpus), held in zip(nodes, helds, strict=True)):
            self._drop_orphans()
        width = min(gpus for _, gpus in nodes)
        free = [i for i in range(width) if all(i not in held for held in helds)]
        if len(free) < count:
            return None
        runs = [
            free[i : i + count]
            for i in range(len(free) - count + 1)
            if free[i + count - 1] - free[i] == count - 1
        ]
        chosen = runs[0] if runs else free[:count]
        for held in helds:
            for device in chosen:
                held[device] = owner
        return [list(chosen) for _ in nodes]

    def release(self, owner: str) -> None:
        for held in self.held.values():
            for device in [d for d, o in held.items() if o == owner]:
                del held[device]

    def _drop_orphans(self) -> None:
        from ray.util.placement_group import placement_group_table

        alive = {
            pg_id
            for pg_id, info in placement_group_table().items()
            if info.get("state") != "REMOVED"
        }
        for held in self.held.values():
            for device in [d for d, o in held.items() if o not in alive]:
                del held[device]


def ledger_actor() -> Any:
    """The cluster's ledger actor (created by the first driver that asks; detached)."""
    import ray

    return (
        ray.remote(DeviceLedger)
        .options(
            name=LEDGER_NAME,
            namespace=LEDGER_NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
        )
        .remote()
    )

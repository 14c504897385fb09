"""`RayPool`: run trials concurrently on Ray, one placement group and one actor per trial.

Place in the data flow: the driver submits a `Candidate` under its trial number; the pool sizes
it (`runners.pool.trial_shape`) and picks, among the alive nodes of the space file's node
groups, the node with the fewest free GPUs that still fits it (best fit, so trials of different
sizes pack). It takes device indices on that node from the cluster's `DeviceLedger`, reserves a
placement group of one bundle ``{"GPU": n, <group resource>: n}`` pinned to that node (Ray's
``ray.io/node-id`` label), and starts a `TrialWorker` actor in it that runs the wrapped runner
(SimRunner or LocalRunner) with a `Placement` of exactly those devices, also set as its
CUDA_VISIBLE_DEVICES. The outcome goes back to the driver, which alone writes the study.
An instance larger than a node holds several nodes of one group: one bundle pinned to each,
spread across them (STRICT_SPREAD), the same device ids on each from the ledger, and one actor
per node. The first (rank 0) leases the rendezvous port and runs the trial, serving from its
node; the others start their node's part of the engine (`TrialWorker.start_node`) and keep it
until the trial ends.

The queue holds up to `lookahead` trials (default: one per node group): the driver prepares that
many next trials (ask, suggest, pre-flight) while all GPUs are busy, so when a round of trials
ends every freed node starts its next trial at once, instead of one after another as the driver
tells the finished ones. Actor, placement group and ledger entry are released as soon as the
trial ends, however it ends; a worker or node lost mid-trial comes back as a `Finished` without
outcome, for the driver to fail and retry.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runners import Runner
from runners.checkpoint import absolute_checkpoint
from runners.errors import RayPoolError
from runners.pool import Finished, TrialShape, trial_placement, trial_shape
from runners.ray.groups import RayNodeGroup, group_capacity, label_flag, label_text
from runners.ray.ledger import ledger_actor
from runners.ray.worker import TrialWorker
from runners.types import Candidate, NodeSlot, Workload

NODE_ID_LABEL = "ray.io/node-id"  # a label every Ray node carries


@dataclass(frozen=True)
class _Queued:
    key: int
    candidate: Candidate
    workload: Workload
    shape: TrialShape


@dataclass(frozen=True)
class _Running:
    key: int
    group: RayNodeGroup
    node_ids: tuple[str, ...]  # rank order: the first serves
    gpus_per_node: int
    actors: tuple[Any, ...]  # ray.actor.ActorHandle per node, rank order
    placement_group: Any  # ray.util.placement_group.PlacementGroup
    ref: Any  # ray.ObjectRef of TrialWorker.run

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * len(self.node_ids)


class RayPool:
    """Trials in flight on a Ray cluster, as many as the node groups' free GPUs allow."""

    def __init__(
        self,
        groups: Sequence[RayNodeGroup],
        runner: Runner,
        fill_node_group: bool = True,
        lookahead: int | None = None,
    ) -> None:
        import ray

        if not groups:
            raise RayPoolError("RayPool needs at least one node group")
        if not ray.is_initialized():
            raise RayPoolError("Ray is not initialized; use runners.ray.ray_cluster()")
        self.groups = tuple(groups)
        self.runner = runner
        self.fill_node_group = fill_node_group
        self.lookahead = max(1, lookahead if lookahead is not None else len(self.groups))
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        self.capacity = {g.node_group.name: group_capacity(g, nodes) for g in self.groups}
        for group in self.groups:
            _check_capacity(group, self.capacity[group.node_group.name].largest_node_gpus)
        # free GPUs per (node group, Ray node) for this pool; device ids come from the ledger
        self._free: dict[tuple[str, str], int] = {
            (name, node_id): gpus
            for name, cap in self.capacity.items()
            for node_id, gpus in cap.node_gpus
        }
        self._node_gpus = {
            str(n["NodeID"]): int(n.get("Resources", {}).get("GPU", 0)) for n in nodes
        }
        self._node_address = {
            str(n["NodeID"]): str(n.get("NodeManagerAddress", "")) for n in nodes
        }
        self._ledger: Any = ledger_actor()
        self._worker = ray.remote(TrialWorker)
        self._queue: deque[_Queued] = deque()
        self._running: dict[int, _Running] = {}

    @property
    def in_flight(self) -> int:
        return len(self._queue) + len(self._running)

    def gpus_in_use(self) -> int:
        return sum(r.gpus for r in self._running.values())

    def has_room(self) -> bool:
        """Room for one more trial: fewer than `lookahead` are waiting for GPUs. So the driver
        prepares the next trials (ask, suggest, pre-flight) while all GPUs are busy, and they
        start the moment trials end, not after the driver has told those and asked again."""
        return len(self._queue) < self.lookahead

    def submit(self, key: int, candidate: Candidate, workload: Workload) -> None:
        shape = trial_shape(candidate, self.groups[0].node_group, self.fill_node_group)
        self._check_nodes(shape)
        candidate = absolute_checkpoint(candidate)  # the driver's folder, not the worker's
        self._queue.append(_Queued(key, candidate, workload, shape))
        self._place_queued()

    def wait(self, timeout_s: float) -> list[Finished]:
        import ray

        if not self._running:
            if self._queue:  # devices held by other drivers: look again after a pause
                time.sleep(min(timeout_s, 0.5))
                self._place_queued()
            return []
        by_ref = {r.ref: r for r in self._running.values()}
        refs = list(by_ref)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout_s)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        finished: list[Finished] = []
        error: BaseException | None = None
        for ref in ready:
            running = by_ref[ref]
            try:
                outcome, placement, node = ray.get(ref)
                finished.append(Finished(running.key, outcome, placement, node=node))
            except ray.exceptions.RayTaskError as exc:
                # The runner itself raised: a bug, surfaced to the driver as in the
                # sequential path (runners report engine faults as outcomes, never raise).
                error = error or exc.as_instanceof_cause()  # type: ignore[no-untyped-call]
            except ray.exceptions.RayError as exc:
                finished.append(Finished(running.key, None, fault=_fault_text(exc)))
            finally:
                self._release(running)
        self._place_queued()
        if error is not None:
            raise error
        return finished

    def release_all(self) -> None:
        self._queue.clear()
        for running in list(self._running.values()):
            self._release(running)

    def placements(self) -> dict[int, tuple[str, int]]:
        """Trials holding a placement group now: key -> (node group, GPUs on all its nodes)."""
        return {k: (r.group.node_group.name, r.gpus) for k, r in self._running.items()}

    def trial_nodes(self) -> dict[int, tuple[str, ...]]:
        """Trials holding a placement group now: key -> the Ray nodes it holds, rank order."""
        return {k: r.node_ids for k, r in self._running.items()}

    def worker_pids(self) -> dict[int, int]:
        """Process id of each running trial's first actor (tests use it to kill one)."""
        import ray

        return {k: int(ray.get(r.actors[0].pid.remote())) for k, r in self._running.items()}

    def _check_nodes(self, shape: TrialShape) -> None:
        """A trial spanning nodes needs that many alive nodes in one group; else say how."""
        best = max(self.groups, key=lambda g: self.capacity[g.node_group.name].nodes)
        offered = self.capacity[best.node_group.name].nodes
        if shape.nodes <= offered:
            return
        per = best.node_group.gpus_per_node
        raise RayPoolError(
            f"node group {best.node_group.name!r}: an instance needs {shape.nodes} nodes of "
            f"{per} GPUs, and only {offered} alive Ray node(s) offer them with resource "
            f"{best.resource!r}{label_text(best.label)}; start the others with `ray start "
            f"--num-gpus {per} --resources '{{\"{best.resource}\": {per}}}'"
            f"{label_flag(best.label)}`"
        )

    def _place_queued(self) -> None:
        """Start queued trials in order while the head fits somewhere (no overtaking, so a
        large trial is not starved by small ones). Best fit: the nodes with the fewest free
        GPUs that still hold it (a trial spanning nodes: that many of one group)."""
        while self._queue:
            if not self._place(self._queue[0]):
                return  # nothing fits now (or other drivers hold the devices): wait
            self._queue.popleft()

    def _place(self, queued: _Queued) -> bool:
        per, count = queued.shape.gpus_per_node, queued.shape.nodes
        options: list[tuple[int, int, tuple[str, ...]]] = []
        for group_index, group in enumerate(self.groups):
            fitting = sorted(
                (free, node_id)
                for (name, node_id), free in self._free.items()
                if name == group.node_group.name and free >= per
            )
            if count == 1:
                options.extend((free, group_index, (node_id,)) for free, node_id in fitting)
            elif len(fitting) >= count:
                chosen = fitting[:count]
                free = sum(f for f, _ in chosen)
                options.append((free, group_index, tuple(n for _, n in chosen)))
        for _, group_index, node_ids in sorted(options):
            if self._start(queued, self.groups[group_index], node_ids):
                return True
        return False

    def _start(self, queued: _Queued, group: RayNodeGroup, node_ids: tuple[str, ...]) -> bool:
        """Reserve one bundle per node (pinned to it; STRICT_SPREAD across several), take the
        same device ids on each from the ledger, start one actor per node and the trial on the
        first; False when the ledger has no such ids free (other drivers hold them)."""
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        per = queued.shape.gpus_per_node
        bundle = {"GPU": float(per), group.resource: float(per)}
        selectors = []
        for node_id in node_ids:
            selector = {NODE_ID_LABEL: node_id}
            if group.label:
                selector[group.label[0]] = group.label[1]
            selectors.append(selector)
        pg = placement_group(
            [dict(bundle) for _ in node_ids],
            strategy="STRICT_PACK" if len(node_ids) == 1 else "STRICT_SPREAD",
            name=f"trial-{queued.key}",
            bundle_label_selector=selectors,
        )
        owner = pg.id.hex()
        nodes = [(node_id, self._node_gpus.get(node_id, 0)) for node_id in node_ids]
        ids = ray.get(self._ledger.allocate_nodes.remote(nodes, per, owner))
        if ids is None:
            remove_placement_group(pg)
            return False
        actors: list[Any] = [
            self._worker.options(
                num_cpus=0,
                num_gpus=per,
                max_restarts=0,
                max_task_retries=0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    pg, placement_group_bundle_index=rank
                ),
            ).remote(self.runner)
            for rank in range(len(node_ids))
        ]
        gpu_ids = [tuple(int(i) for i in node) for node in ids]
        if len(node_ids) == 1:
            placement = trial_placement(group.node_group, gpu_ids[0])
            ref = actors[0].run.remote(queued.candidate, queued.workload, placement)
        else:
            others = tuple(
                NodeSlot(self._node_address.get(node_id, ""), devices)
                for node_id, devices in zip(node_ids[1:], gpu_ids[1:], strict=True)
            )
            placement = trial_placement(
                group.node_group,
                gpu_ids[0],
                others=others,
                head_address=self._node_address.get(node_ids[0], ""),
                others_started=True,
            )
            port = actors[0].lease_dist_port.remote()  # resolved by Ray before each call runs
            for rank, actor in enumerate(actors[1:], start=1):
                actor.start_node.remote(queued.candidate, placement, rank, port)
            ref = actors[0].run.remote(queued.candidate, queued.workload, placement, port)
        for node_id in node_ids:
            self._free[(group.node_group.name, node_id)] -= per
        self._running[queued.key] = _Running(
            queued.key, group, node_ids, per, tuple(actors), pg, ref
        )
        return True

    def _release(self, running: _Running) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        if self._running.pop(running.key, None) is None:
            return
        for actor in running.actors:
            with contextlib.suppress(Exception):  # already dead: nothing left to release
                ray.kill(actor, no_restart=True)
        with contextlib.suppress(Exception):
            remove_placement_group(running.placement_group)
        with contextlib.suppress(Exception):
            self._ledger.release.remote(running.placement_group.id.hex())
        for node_id in running.node_ids:
            self._free[(running.group.node_group.name, node_id)] += running.gpus_per_node


def _check_capacity(group: RayNodeGroup, largest_node_gpus: int) -> None:
    """A group needs one alive node offering its GPUs per node; else say how to start one."""
    gpus = group.node_group.gpus_per_node
    if largest_node_gpus >= gpus:
        return
    raise RayPoolError(
        f"node group {group.node_group.name!r}: no alive Ray node offers {gpus} GPUs with "
        f"resource {group.resource!r}{label_text(group.label)} (largest: {largest_node_gpus}); "
        f"start its nodes with `ray start --num-gpus {gpus} --resources "
        f"'{{\"{group.resource}\": {gpus}}}'{label_flag(group.label)}`"
    )


def _fault_text(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    head = lines[0] if lines else ""
    return f"{type(exc).__name__}: {head}"[:500]

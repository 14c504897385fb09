"""Trial pools: how many trials run at once, on which GPUs, and how their outcomes come back.

Place in the data flow: the driver (optimizer.study) asks for a trial only when the pool
`has_room`, turns it into a `Candidate`, `submit`s it under the trial's number, and collects
`Finished` results with `wait`; it alone writes the study. A pool sizes each trial with
`trial_shape` (the whole node when the space file fills node groups, else the candidate's own
TP x PP x DP; an instance larger than a node spans several), gives its runner a `Placement` on
a node-group slice of exactly those GPUs, and releases everything it started (`release_all`).
A local checkpoint path is made absolute on the driver as the pool accepts the trial
(`runners.checkpoint.absolute_checkpoint`), so it means the same folder on whichever node runs
it. `InlinePool` runs one trial at a time in
the driver's own thread (the sequential path); `runners.ray.RayPool` runs one Ray actor
per trial on a placement group. A `Finished` without an outcome means the worker was lost
(actor or node died): an infrastructure fault the driver retries, never an engine crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from runners import Runner
from runners.checkpoint import absolute_checkpoint
from runners.engines import instance_nodes, resolve_candidate
from runners.phases import trial_phases
from runners.types import Candidate, NodeGroup, NodeSlot, Placement, TrialOutcome, Workload


@dataclass(frozen=True)
class Finished:
    """One trial the pool is done with: its outcome, or why its worker was lost."""

    key: int
    outcome: TrialOutcome | None
    placement: Placement | None = None
    fault: str = ""
    node: str = ""


@runtime_checkable
class TrialPool(Protocol):
    """Runs submitted trials concurrently as far as its resources allow; never shares a GPU."""

    def has_room(self) -> bool:
        """True when a newly submitted trial would not have to wait behind another one."""
        ...

    def submit(self, key: int, candidate: Candidate, workload: Workload) -> None:
        """Start (or queue until resources free up) the trial `key`; does not block. A local
        checkpoint path is made absolute here, on the driver."""
        ...

    def wait(self, timeout_s: float) -> list[Finished]:
        """Trials finished since the last call; waits up to `timeout_s` for at least one."""
        ...

    def release_all(self) -> None:
        """Stop every trial in flight and release its resources (idempotent)."""
        ...


@dataclass(frozen=True)
class TrialShape:
    """What one trial holds: `nodes` nodes of its node group, `gpus_per_node` GPUs on each."""

    nodes: int
    gpus_per_node: int

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


def trial_shape(candidate: Candidate, node_group: NodeGroup, fill_node_group: bool) -> TrialShape:
    """The nodes and GPUs one trial holds in `node_group`.

    One engine instance is TP x PP x DP with the engine's defaults (`Resolved.instance_gpus`,
    cached per candidate). One that fits a node holds one node: the whole node when the space
    fills node groups (smaller configurations replicated to fill it, measured as a deployment of
    the whole node), else exactly its GPUs. One larger than a node spans the fewest nodes that
    hold it, the same number of GPUs on each (whole nodes when filling node groups); where the
    group has too few nodes it holds one node and fails at start with the engine's own error.
    """
    per_node = node_group.gpus_per_node
    instance_gpus = resolve_candidate(candidate, node_group).instance_gpus
    nodes = instance_nodes(instance_gpus, per_node)
    if nodes == 1 or nodes > node_group.nodes:
        return TrialShape(1, per_node if fill_node_group else max(1, min(per_node, instance_gpus)))
    return TrialShape(nodes, per_node if fill_node_group else -(-instance_gpus // nodes))


def trial_gpus(candidate: Candidate, node_group: NodeGroup, fill_node_group: bool) -> int:
    """GPUs one trial holds in `node_group`, on all its nodes (`trial_shape`)."""
    return trial_shape(candidate, node_group, fill_node_group).gpus


def trial_placement(
    node_group: NodeGroup,
    gpu_ids: tuple[int, ...],
    host: str = "127.0.0.1",
    *,
    others: tuple[NodeSlot, ...] = (),
    head_address: str = "",
    dist_port: int = 0,
    others_started: bool = False,
) -> Placement:
    """The runner's view of its GPUs: a slice of `node_group` holding exactly them, `gpu_ids`
    on the first node and, for an instance spanning nodes, `others` (the network between the
    nodes is the group's)."""
    group = NodeGroup(
        node_group.name, node_group.gpu, len(gpu_ids), 1 + len(others), node_group.inter_node_gb_s
    )
    return Placement(group, gpu_ids, host, others, head_address, dist_port, others_started)


def local_placement(node_group: NodeGroup, shape: TrialShape) -> Placement:
    """A placement of `shape` on this machine: device ids 0..n-1 of each node, every node
    reached at the loopback address (the sequential path; the runner starts every node)."""
    ids = tuple(range(shape.gpus_per_node))
    others = tuple(NodeSlot("127.0.0.1", ids) for _ in range(shape.nodes - 1))
    return trial_placement(node_group, ids, others=others)


class InlinePool:
    """One trial at a time, run by `runner` in the caller's thread when it is collected.

    The sequential path: `submit` only records the trial, `wait` runs it to completion (so an
    exception or Ctrl-C inside the runner reaches the driver there). The trial sees GPUs
    0..n-1 of each node it holds (`local_placement`).
    """

    def __init__(self, runner: Runner, node_group: NodeGroup, fill_node_group: bool = True):
        self.runner = runner
        self.node_group = node_group
        self.fill_node_group = fill_node_group
        self._queued: tuple[int, Candidate, Workload] | None = None

    def has_room(self) -> bool:
        return self._queued is None

    def submit(self, key: int, candidate: Candidate, workload: Workload) -> None:
        if self._queued is not None:
            raise RuntimeError(
                f"InlinePool runs one trial at a time; trial {key} submitted "
                f"while trial {self._queued[0]} is in flight"
            )
        self._queued = (key, absolute_checkpoint(candidate), workload)

    def wait(self, timeout_s: float) -> list[Finished]:
        if self._queued is None:
            return []
        key, candidate, workload = self._queued
        shape = trial_shape(candidate, self.node_group, self.fill_node_group)
        placement = local_placement(self.node_group, shape)
        try:
            with trial_phases(key):
                outcome = self.runner.run(candidate, workload, placement)
        finally:
            self._queued = None
        return [Finished(key, outcome, placement)]

    def release_all(self) -> None:
        self._queued = None

"""`RayPool`: run trials concurrently on Ray, one placement group and one actor per trial.

Place in the data flow: the driver submits a `Candidate` under its trial number; the pool sizes
it (`runners.pool.trial_gpus`) and picks, among the alive nodes of the space file's node
groups, the node with the fewest free GPUs that still fits it (best fit, so trials of different
sizes pack). It assigns the trial device indices on that node itself, reserves a placement group
of one bundle ``{"GPU": n, <group resource>: n}`` pinned to that node (Ray's ``ray.io/node-id``
label), and starts a `TrialWorker` actor in it that runs the wrapped runner (SimRunner or
LocalRunner) with a `Placement` of exactly those devices, also set as its CUDA_VISIBLE_DEVICES.
The outcome goes back to the driver, which alone writes the study.

Why the pool, not Ray, picks device ids: Ray 2.60 reserves GPU counts correctly, but on a busy
node it can report to a new actor GPU ids that a live placement group still holds (seen on a
two-raylet cluster in 5 runs of 6). Ray still does the counting (nothing else Ray schedules can
take those GPUs); the ids come from `DeviceLedger`, one named actor per Ray cluster that every
driver of every study shares, so two trials never get the same device even when several drivers
share the node groups. A driver that dies leaves entries behind; they are dropped once their
placement group is gone. Ray device ids are assumed to be 0..n-1 on each node (`ray start
--num-gpus n` on a node that sees all its GPUs).

The queue holds up to `lookahead` trials (default: one per node group): the driver prepares that
many next trials (ask, suggest, pre-flight) while all GPUs are busy, so when a round of trials
ends every freed node starts its next trial at once, instead of one after another as the driver
tells the finished ones. Actor and placement group are released as soon as the trial ends,
however it ends; a worker or node lost mid-trial comes back as a `Finished` without outcome, for
the driver to fail and retry. `ray_cluster` starts an embedded local Ray that declares the space
file's node groups (or joins an existing cluster), with token auth and child-process cleanup set
up. Multi-node trials (TP x PP beyond one node) are not placed: an instance must fit one node of
its group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners import Runner
from runners.errors import RayPoolError
from runners.pool import Finished, trial_gpus, trial_placement
from runners.types import Candidate, NodeGroup, Placement, TrialOutcome, Workload

# Raylets read this at start: kill a dead worker's children. (Ray's subreaper variant is NOT
# used: with it, every process of the job loses its children's exit statuses - subprocess
# reports 0 for a child that exited 2 - which breaks crash classification by exit code. Engines
# started in their own session are killed by the per-actor sweeper below instead.)
_CHILD_CLEANUP_ENV = {
    "RAY_kill_child_processes_on_worker_exit": "true",
}


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


TRIAL_TAG_ENV = "SERVING_OPTIMIZER_TRIAL_TAG"
NODE_ID_LABEL = "ray.io/node-id"  # a label every Ray node carries

# Runs detached (own session, not a child of the actor): waits for the actor process to end,
# however it ends, then SIGKILLs every process still carrying the actor's tag in its environment
# (the engine it started and the engine's own workers inherit it).
_SWEEPER = """
import os, signal, sys, time
tag, pid, born = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if os.fork():
    os._exit(0)
os.setsid()
def started(p):
    try:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZX" else fields[19]
while started(pid) == born:
    time.sleep(0.5)
needle = f"{sys.argv[4]}={tag}".encode()
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read().split(b"\\0"):
                    os.kill(int(name), signal.SIGKILL)
        except OSError:
            pass
"""


def _start_sweeper() -> None:
    """Tag this process's future children and start their sweeper (Linux /proc only)."""
    stat = Path(f"/proc/{os.getpid()}/stat")
    if not stat.exists():
        return
    tag = secrets.token_hex(8)
    born = stat.read_text().rsplit(")", 1)[1].split()[19]
    env = {k: v for k, v in os.environ.items() if k != TRIAL_TAG_ENV}
    subprocess.run(
        # -I -S: the standard library is all it needs; skipping site saves most of its start
        [sys.executable, "-I", "-S", "-c", _SWEEPER, tag, str(os.getpid()), born, TRIAL_TAG_ENV],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=60,
    )
    os.environ[TRIAL_TAG_ENV] = tag


class TrialWorker:
    """The body of the per-trial actor: runs one candidate with the GPUs Ray assigned it.

    Everything it starts carries a tag in its environment; a sweeper started with the actor
    kills whatever still carries it once the actor process is gone (killed, crashed, or its node
    lost), so an engine never outlives its trial.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        _start_sweeper()

    def run(
        self,
        candidate: Candidate,
        workload: Workload,
        node_group: NodeGroup,
        gpu_ids: tuple[int, ...],
    ) -> tuple[TrialOutcome, Placement, str]:
        import ray

        # This process exists for this one trial: what it and its engine see is the pool's pick.
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)
        placement = trial_placement(node_group, gpu_ids)
        outcome = self.runner.run(candidate, workload, placement)
        return outcome, placement, str(ray.get_runtime_context().get_node_id())

    def pid(self) -> int:
        return os.getpid()


LEDGER_NAME = "serving-optimizer-device-ledger"
LEDGER_NAMESPACE = "serving-optimizer"


class DeviceLedger:
    """Which device ids of which node are held, and by which placement group (hex id).

    One named, detached actor per Ray cluster: every RayPool (every driver) allocates through
    it, so ids are never handed out twice. Entries whose placement group no longer exists (a
    driver that died without releasing) are dropped when a node runs short.
    """

    def __init__(self) -> None:
        self.held: dict[str, dict[int, str]] = {}  # node id -> device id -> owner

    def allocate(self, node_id: str, node_gpus: int, count: int, owner: str) -> list[int] | None:
        held = self.held.setdefault(node_id, {})
        if node_gpus - len(held) < count:
            self._drop_orphans()
        free = [i for i in range(node_gpus) if i not in held]
        if len(free) < count:
            return None
        runs = [
            free[i : i + count]
            for i in range(len(free) - count + 1)
            if free[i + count - 1] - free[i] == count - 1
        ]
        chosen = runs[0] if runs else free[:count]  # contiguous when possible (NVLink islands)
        for device in chosen:
            held[device] = owner
        return chosen

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


@dataclass(frozen=True)
class _Queued:
    key: int
    candidate: Candidate
    workload: Workload
    gpus: int


@dataclass(frozen=True)
class _Running:
    key: int
    group: RayNodeGroup
    node_id: str
    gpu_ids: tuple[int, ...]
    actor: Any  # ray.actor.ActorHandle
    placement_group: Any  # ray.util.placement_group.PlacementGroup
    ref: Any  # ray.ObjectRef of TrialWorker.run


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
            raise RayPoolError("Ray is not initialized; use runners.ray_pool.ray_cluster()")
        self.groups = tuple(groups)
        self.runner = runner
        self.fill_node_group = fill_node_group
        self.lookahead = max(1, lookahead if lookahead is not None else len(self.groups))
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        self.capacity = {g.node_group.name: _capacity(g, nodes) for g in self.groups}
        for group in self.groups:
            cap = self.capacity[group.node_group.name]
            if cap.largest_node_gpus < group.node_group.gpus_per_node:
                raise RayPoolError(
                    f"node group {group.node_group.name!r}: no alive Ray node offers "
                    f"{group.node_group.gpus_per_node} GPUs with resource "
                    f"{group.resource!r}{_label_text(group.label)} (largest: "
                    f"{cap.largest_node_gpus}); start its nodes with `ray start --num-gpus "
                    f"{group.node_group.gpus_per_node} --resources "
                    f"'{{\"{group.resource}\": {group.node_group.gpus_per_node}}}'"
                    f"{_label_flag(group.label)}`"
                )
        # free GPUs per (node group, Ray node) for this pool; device ids come from the ledger
        self._free: dict[tuple[str, str], int] = {
            (name, node_id): gpus
            for name, cap in self.capacity.items()
            for node_id, gpus in cap.node_gpus
        }
        self._node_gpus = {
            str(n["NodeID"]): int(n.get("Resources", {}).get("GPU", 0)) for n in nodes
        }
        self._ledger: Any = (
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
        self._worker = ray.remote(TrialWorker)
        self._queue: deque[_Queued] = deque()
        self._running: dict[int, _Running] = {}

    @property
    def in_flight(self) -> int:
        return len(self._queue) + len(self._running)

    def gpus_in_use(self) -> int:
        return sum(len(r.gpu_ids) for r in self._running.values())

    def has_room(self) -> bool:
        """Room for one more trial: fewer than `lookahead` are waiting for GPUs. So the driver
        prepares the next trials (ask, suggest, pre-flight) while all GPUs are busy, and they
        start the moment trials end, not after the driver has told those and asked again."""
        return len(self._queue) < self.lookahead

    def submit(self, key: int, candidate: Candidate, workload: Workload) -> None:
        gpus = trial_gpus(candidate, self.groups[0].node_group, self.fill_node_group)
        self._queue.append(_Queued(key, candidate, workload, gpus))
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
        """Trials holding a placement group now: key -> (node group, GPUs)."""
        return {k: (r.group.node_group.name, len(r.gpu_ids)) for k, r in self._running.items()}

    def worker_pids(self) -> dict[int, int]:
        """Process id of each running trial's actor (tests use it to kill one)."""
        import ray

        return {k: int(ray.get(r.actor.pid.remote())) for k, r in self._running.items()}

    def _place_queued(self) -> None:
        """Start queued trials in order while the head fits somewhere (no overtaking, so a
        large trial is not starved by small ones). Best fit: the node with the fewest free
        GPUs that still holds it."""
        while self._queue:
            head = self._queue[0]
            fitting = sorted(
                (free, group_index, node_id)
                for group_index, group in enumerate(self.groups)
                for (name, node_id), free in self._free.items()
                if name == group.node_group.name and free >= head.gpus
            )
            for _, group_index, node_id in fitting:
                if self._start(head, self.groups[group_index], node_id):
                    self._queue.popleft()
                    break
            else:
                return  # nothing fits now (or other drivers hold the devices): wait

    def _start(self, queued: _Queued, group: RayNodeGroup, node_id: str) -> bool:
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundle = {"GPU": float(queued.gpus), group.resource: float(queued.gpus)}
        selector = {NODE_ID_LABEL: node_id}
        if group.label:
            selector[group.label[0]] = group.label[1]
        pg = placement_group(
            [bundle],
            strategy="STRICT_PACK",
            name=f"trial-{queued.key}",
            bundle_label_selector=[selector],
        )
        owner = pg.id.hex()
        node_gpus = self._node_gpus.get(node_id, 0)
        ids = ray.get(self._ledger.allocate.remote(node_id, node_gpus, queued.gpus, owner))
        if ids is None:
            remove_placement_group(pg)
            return False
        gpu_ids = tuple(int(i) for i in ids)
        actor: Any = self._worker.options(
            num_cpus=0,
            num_gpus=queued.gpus,
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                pg, placement_group_bundle_index=0
            ),
        ).remote(self.runner)
        ref = actor.run.remote(queued.candidate, queued.workload, group.node_group, gpu_ids)
        self._free[(group.node_group.name, node_id)] -= queued.gpus
        self._running[queued.key] = _Running(queued.key, group, node_id, gpu_ids, actor, pg, ref)
        return True

    def _release(self, running: _Running) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        if self._running.pop(running.key, None) is None:
            return
        with contextlib.suppress(Exception):  # already dead: nothing left to release
            ray.kill(running.actor, no_restart=True)
        with contextlib.suppress(Exception):
            remove_placement_group(running.placement_group)
        with contextlib.suppress(Exception):
            self._ledger.release.remote(running.placement_group.id.hex())
        self._free[(running.group.node_group.name, running.node_id)] += len(running.gpu_ids)


def _capacity(group: RayNodeGroup, nodes: list[dict[str, Any]]) -> GroupCapacity:
    """GPUs of `group` on alive nodes: per node min(GPU, resource), capped by the space file."""
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


def _fault_text(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    head = lines[0] if lines else ""
    return f"{type(exc).__name__}: {head}"[:500]


def _label_text(label: tuple[str, str] | None) -> str:
    return f" and label {label[0]}={label[1]}" if label else ""


def _label_flag(label: tuple[str, str] | None) -> str:
    return f" --labels {label[0]}={label[1]}" if label else ""


@contextlib.contextmanager
def ray_cluster(groups: Sequence[RayNodeGroup], address: str | None = None) -> Iterator[str]:
    """Connect to Ray for the duration of the block; yields a one-line description.

    `address` None starts an embedded local Ray (this machine as one node declaring every node
    group's GPUs and resource; on a machine without GPUs they are logical, which the simulated
    runner needs) and shuts it down at the end. Token authentication stays on: unless the
    environment already chose (RAY_AUTH_MODE / RAY_AUTH_TOKEN), a fresh random token is used
    for this process and its workers only. `address` ("auto", "ray://host:10001", ...) joins an
    existing cluster, whose nodes must declare the groups' resources (see the README).
    """
    import ray

    if ray.is_initialized():
        raise RayPoolError("Ray is already initialized in this process")
    if address is None:
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
        for key, value in _CHILD_CLEANUP_ENV.items():
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
            num_gpus=total,
            resources=resources,
            labels=labels or None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        description = f"embedded local Ray, {total} GPUs in node groups " + ", ".join(
            f"{g.node_group.name} ({g.node_group.total_gpus} x {g.node_group.gpu})" for g in groups
        )
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        description = f"Ray cluster at {address}"
    try:
        yield description
    finally:
        ray.shutdown()

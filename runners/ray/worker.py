"""`TrialWorker`: the body of the one Ray actor that runs one trial.

Place in the data flow: `runners.ray.pool.RayPool` starts one actor of this class per node a
trial holds, in the trial's placement group, and calls `run` once on the first (rank 0): it
sets CUDA_VISIBLE_DEVICES to the device ids the pool chose, runs the wrapped runner (SimRunner
or LocalRunner) on the trial's `Placement`, and returns the outcome with the Ray node it ran
on. For an instance spanning nodes, rank 0 also leases the rendezvous port
(`lease_dist_port`) and every other actor starts its node's part (`start_node`). When the actor
starts, it tags its own environment and starts the sweeper (`runners.ray.sweeper`), so that no
process it starts outlives the actor, however the actor ends.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
from pathlib import Path

from runners import NodeStarter, Runner
from runners.process import PortLease
from runners.ray import sweeper
from runners.types import Candidate, Placement, TrialOutcome, Workload

TRIAL_TAG_ENV = "SERVING_OPTIMIZER_TRIAL_TAG"


def start_sweeper(env_name: str = TRIAL_TAG_ENV) -> str | None:
    """Tag this process's future children and start their sweeper; return the tag.

    Returns None (and starts nothing) where there is no /proc. The sweeper runs as
    ``python -I -S runners/ray/sweeper.py``: the standard library is all it needs, and skipping
    site saves most of its start.
    """
    stat = Path(f"/proc/{os.getpid()}/stat")
    if not stat.exists():
        return None
    tag = secrets.token_hex(8)
    born = sweeper.start_time(os.getpid())
    if born is None:
        return None
    env = {k: v for k, v in os.environ.items() if k != env_name}
    subprocess.run(
        [sys.executable, "-I", "-S", sweeper.__file__, tag, str(os.getpid()), born, env_name],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=60,
    )
    os.environ[env_name] = tag
    return tag


class TrialWorker:
    """Runs one candidate with the GPUs the pool assigned it.

    Everything it starts carries a tag in its environment; a sweeper started with the actor
    kills whatever still carries it once the actor process is gone (killed, crashed, or its node
    lost), so an engine never outlives its trial.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._dist_lease: PortLease | None = None
        start_sweeper()

    def run(
        self, candidate: Candidate, workload: Workload, placement: Placement, dist_port: int = 0
    ) -> tuple[TrialOutcome, Placement, str]:
        """Run the trial on rank 0 of `placement` (its only node, or the one that serves);
        `dist_port` is the rendezvous port this actor leased (`lease_dist_port`)."""
        import ray

        # This process exists for this one trial: what it and its engine see is the pool's pick.
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in placement.gpu_ids)
        if dist_port:
            placement = dataclasses.replace(placement, dist_port=dist_port)
        outcome = self.runner.run(candidate, workload, placement)
        return outcome, placement, str(ray.get_runtime_context().get_node_id())

    def start_node(
        self, candidate: Candidate, placement: Placement, rank: int, dist_port: int = 0
    ) -> None:
        """Start node `rank`'s part of an instance spanning nodes (a runner that starts no
        processes has nothing to start); it runs until the pool ends this actor."""
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(
            str(i) for i in placement.nodes[rank].gpu_ids
        )
        if dist_port:
            placement = dataclasses.replace(placement, dist_port=dist_port)
        if isinstance(self.runner, NodeStarter):
            self.runner.start_node(candidate, placement, rank)

    def lease_dist_port(self) -> int:
        """A port on this node for an instance's distributed rendezvous, held (against other
        leases on this machine) as long as this actor lives."""
        self._dist_lease = PortLease("0.0.0.0")
        return self._dist_lease.port

    def pid(self) -> int:
        return os.getpid()

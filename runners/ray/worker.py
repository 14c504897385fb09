"""`TrialWorker`: the body of the one Ray actor that runs one trial.

Place in the data flow: `runners.ray.pool.RayPool` starts one actor of this class per trial,
in the trial's placement group, and calls `run` once: it sets CUDA_VISIBLE_DEVICES to the
device ids the pool chose, runs the wrapped runner (SimRunner or LocalRunner) on a `Placement`
of exactly those devices, and returns the outcome with the Ray node it ran on. When the actor
starts, it tags its own environment and starts the sweeper (`runners.ray.sweeper`), so that no
process it starts outlives the actor, however the actor ends.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from runners import Runner
from runners.pool import trial_placement
from runners.ray import sweeper
from runners.types import Candidate, NodeGroup, Placement, TrialOutcome, Workload

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
        start_sweeper()

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

"""Parallel efficiency of `RayPool` with 1, 2 and 4 node groups, and the driver's cost per trial.

Where it sits: a developer benchmark of the trial loop (optimizer.study.run_study) driving a
RayPool on an embedded local Ray with logical GPUs. Every trial is a simulated trial padded to a
fixed duration, and fills one node group (8 GPUs), so with G groups the ideal wall time of N
trials is ceil(N / G) x duration. Reported, from the same run: wall time against that ideal
(ratio and parallel efficiency; wall time runs from the first submit to the last result, so
Ray's start and the final report are excluded), the time per trial a group spends not running
a trial (actor and placement-group start, telling, asking), and the driver's own time per
trial (loop time outside the pool's wait: ask, suggest, pre-flight, tell, progress). Usage:

    python scripts/bench_ray.py [--trial-seconds 10] [--rounds 10] [--groups 1 2 4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout, not another installed copy

from optimizer.config import RunnerChoice, StudyConfig  # noqa: E402
from optimizer.loop import run_study  # noqa: E402
from optimizer.spec.load import load_spec  # noqa: E402
from optimizer.spec.models import StudySpec  # noqa: E402
from runners.pool import Finished  # noqa: E402
from runners.ray import RayNodeGroup, RayPool, ray_cluster  # noqa: E402
from runners.sim.runner import SimRunner  # noqa: E402
from runners.types import Candidate, NodeGroup, Placement, TrialOutcome, Workload  # noqa: E402


class FixedDurationRunner:
    """The simulator, padded with a sleep so that every trial takes `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sim = SimRunner()

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        started = time.perf_counter()
        outcome = self.sim.run(candidate, workload, placement)
        time.sleep(max(0.0, self.seconds - (time.perf_counter() - started)))
        return outcome


class TimedPool:
    """Times the trial loop: from the first submit to the last result, and the part of it the
    driver spends inside the pool's `wait` (everything else is the driver's own work)."""

    def __init__(self, pool: RayPool) -> None:
        self.pool = pool
        self.waiting_s = 0.0
        self.first_submit = 0.0
        self.last_result = 0.0

    def has_room(self) -> bool:
        return self.pool.has_room()

    def submit(self, key: int, candidate: Candidate, workload: Workload) -> None:
        self.first_submit = self.first_submit or time.perf_counter()
        self.pool.submit(key, candidate, workload)

    def wait(self, timeout_s: float) -> list[Finished]:
        started = time.perf_counter()
        try:
            finished = self.pool.wait(timeout_s)
        finally:
            self.waiting_s += time.perf_counter() - started
        if finished:
            self.last_result = time.perf_counter()
        return finished

    def release_all(self) -> None:
        self.pool.release_all()


@dataclass(frozen=True)
class Result:
    groups: int
    trials: int
    wall_s: float
    ideal_s: float
    driver_s: float

    def line(self) -> str:
        ratio = self.wall_s / self.ideal_s
        idle = (self.wall_s - self.ideal_s) * self.groups / self.trials
        driver = self.driver_s / self.trials
        return (
            f"{self.groups:>6} {self.trials:>6} {self.wall_s:>8.1f} {self.ideal_s:>8.1f} "
            f"{ratio:>9.3f}x {100 / ratio:>10.1f}% {idle:>11.2f} {driver:>11.3f}"
        )


def bench(spec: StudySpec, groups: int, trials: int, seconds: float, workdir: Path) -> Result:
    shape = spec.node_group
    ray_groups = [
        RayNodeGroup(NodeGroup(f"g{i}", shape.gpu, shape.gpus_per_node), f"bench_pool_{i}")
        for i in range(groups)
    ]
    url = f"sqlite:///{workdir / f'bench-{groups}.db'}"
    config = StudyConfig.of(
        spec,
        storage=url,
        study_name=f"bench-{groups}",
        n_trials=trials,
        seed=0,
        quiet=True,
        runner=RunnerChoice("ray"),
    )
    with ray_cluster(ray_groups):
        pool = TimedPool(RayPool(ray_groups, FixedDurationRunner(seconds), True))
        with contextlib.redirect_stdout(io.StringIO()):  # the study's own summary
            status = run_study(config, pool)
        pool.release_all()
    if status != 0:
        raise SystemExit(f"run_study exited with {status}")
    wall = pool.last_result - pool.first_submit
    ideal = math.ceil(trials / groups) * seconds
    return Result(groups, trials, wall, ideal, wall - pool.waiting_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="qwen3-moe.yaml")
    parser.add_argument("--trial-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=10, help="trials per node group")
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    spec = load_spec(args.space)
    print(
        f"{args.rounds} trials of {args.trial_seconds:g} s per node group (8 GPUs each, one "
        "trial fills a group); embedded local Ray, logical GPUs"
    )
    print(
        f"{'groups':>6} {'trials':>6} {'wall s':>8} {'ideal s':>8} {'wall/ideal':>10} "
        f"{'efficiency':>11} {'idle s/tr':>11} {'driver s/tr':>11}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for groups in args.groups:
            result = bench(spec, groups, groups * args.rounds, args.trial_seconds, Path(tmp))
            print(result.line(), flush=True)


if __name__ == "__main__":
    main()

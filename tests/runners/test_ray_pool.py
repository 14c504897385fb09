"""`RayPool` on a local three-node Ray cluster with simulated GPUs.

One cluster for the module: node group a on the head node, b on a second raylet, 8 logical GPUs
each, and a third raylet that also declares a's resource (group a2: a's two nodes, for
instances spanning nodes). Trials of mixed sizes must be packed, never over capacity, on
disjoint GPUs that the engine sees as CUDA_VISIBLE_DEVICES; an actor killed mid-trial (with an
engine-like child process in its own session) must come back as a retried trial, with the child
gone and everything released; an instance larger than a node holds one bundle on each of two
nodes, and each node's part is started there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optimizer.config import RunnerChoice, StudyConfig
from optimizer.loop import run_study
from optimizer.record import WORKER_FAULT
from optimizer.spec.load import load_spec
from runners import Runner
from runners.types import Candidate, NodeGroup, Placement, TrialOutcome, Workload
from tests.optimizer.test_driver import metrics

ray = pytest.importorskip("ray")

from runners.errors import RayPoolError  # noqa: E402
from runners.pool import TrialPool  # noqa: E402
from runners.ray import RayNodeGroup, RayPool  # noqa: E402
from runners.testing.pool import (  # noqa: E402
    HoldRunner,
    TrialPoolConformance,
    process_gone,
    spanning,
    tp,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GROUP_A = RayNodeGroup(NodeGroup("a", "H100-SXM-80GB", 8), "pool_a")
GROUP_B = RayNodeGroup(NodeGroup("b", "H100-SXM-80GB", 8), "pool_b")
GROUP_A2 = RayNodeGroup(NodeGroup("a2", "H100-SXM-80GB", 8, 2, 50.0), "pool_a")
ALL_GPUS = 24.0
CHILD_MARKER = "SERVING_OPTIMIZER_TEST_ENGINE"


class DiesOnceRunner:
    """The first trial starts an engine-like child in its own session, then its actor is killed
    (SIGKILL, as the OOM killer or a lost node would); every other trial sleeps briefly."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        try:  # claim the death atomically: two trials start at once on the two groups
            claim = open(self.flag, "x")  # noqa: SIM115 - closed below, before the kill
        except FileExistsError:
            claim = None
        if claim is not None:
            child = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(600)"],
                start_new_session=True,
                env={**os.environ, CHILD_MARKER: str(self.flag)},
            )
            claim.write(str(child.pid))
            claim.close()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.5)
        return TrialOutcome("ok", metrics=metrics(1000.0, 10.0))


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    from ray.cluster_utils import Cluster

    env = {
        "RAY_AUTH_MODE": "disabled",
        "RAY_kill_child_processes_on_worker_exit": "true",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        local = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 2, "num_gpus": 8, "resources": {"pool_a": 8}},
        )
        local.add_node(num_cpus=2, num_gpus=8, resources={"pool_b": 8})
        local.add_node(num_cpus=2, num_gpus=8, resources={"pool_a": 8})
        ray.init(address=local.address, include_dashboard=False, log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()
            local.shutdown()


def wait_all_gpus_free(total: float) -> float:
    deadline = time.monotonic() + 30
    free = 0.0
    while time.monotonic() < deadline:
        free = ray.available_resources().get("GPU", 0.0)
        if free == total:
            break
        time.sleep(0.2)
    return free


def test_mixed_sizes_are_packed_on_disjoint_gpus_within_capacity(cluster: None) -> None:
    pool = RayPool([GROUP_A, GROUP_B], HoldRunner(1.5), fill_node_group=False)
    assert {name: cap.gpus for name, cap in pool.capacity.items()} == {"a": 8, "b": 8}
    workload = Workload("w", "random", 1)
    sizes = [8, 4, 2, 2, 1, 1, 8, 4, 2, 1, 4, 2]
    snapshots: list[dict[int, tuple[str, int]]] = []
    results = {}
    try:
        pending = list(enumerate(sizes))
        while pending or pool.placements():
            while pending and pool.has_room():
                key, size = pending.pop(0)
                pool.submit(key, tp(size), workload)
                snapshots.append(pool.placements())
            for done in pool.wait(5.0):
                results[done.key] = done
            snapshots.append(pool.placements())
    finally:
        pool.release_all()
    assert sorted(results) == list(range(len(sizes)))
    for snapshot in snapshots:
        for group in ("a", "b"):
            assert sum(g for name, g in snapshot.values() if name == group) <= 8

    def sizes_in(snapshot: dict[int, tuple[str, int]], group: str) -> set[int]:
        return {gpus for name, gpus in snapshot.values() if name == group}

    assert any(len(sizes_in(s, group)) >= 2 for s in snapshots for group in ("a", "b")), (
        "trials of different sizes shared a node group"
    )
    nodes_of_group: dict[str, set[str]] = {"a": set(), "b": set()}
    for key, done in results.items():
        assert done.outcome is not None and done.placement is not None
        assert len(done.placement.gpu_ids) == sizes[key]
        nodes_of_group[done.placement.node_group.name].add(done.node)
        visible = dict(done.outcome.artifacts)["cuda_visible_devices"]
        assert visible == ",".join(str(i) for i in done.placement.gpu_ids)
    # each group's trials ran on its own raylet: the pinned node is where the ids were counted
    assert len(nodes_of_group["a"]) == len(nodes_of_group["b"]) == 1
    assert nodes_of_group["a"] != nodes_of_group["b"]
    for snapshot in snapshots:  # trials holding placement groups at the same time
        seen: set[tuple[str, int]] = set()
        for key in snapshot:
            done = results[key]
            assert done.placement is not None
            gpus = {(done.node, gpu) for gpu in done.placement.gpu_ids}
            assert not gpus & seen, (
                f"trial {key} got a GPU another trial held; held together: {snapshot}; GPUs: "
                + str(
                    {
                        k: (r.node[:4], r.placement and r.placement.gpu_ids)
                        for k, r in results.items()
                    }
                )
            )
            seen |= gpus
    assert wait_all_gpus_free(ALL_GPUS) == ALL_GPUS, "every placement group was released"


def test_a_node_group_missing_from_the_cluster_is_a_clear_error(cluster: None) -> None:
    missing = RayNodeGroup(NodeGroup("c", "H100-SXM-80GB", 8), "pool_c")
    with pytest.raises(RayPoolError, match="pool_c"):
        RayPool([missing], HoldRunner(0.0))


def test_killed_actor_is_retried_and_leaves_no_orphan(cluster: None, tmp_path: Path) -> None:
    spec = load_spec("qwen3-moe.yaml")
    flag = tmp_path / "killed-once"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = StudyConfig.of(
        spec,
        storage=url,
        study_name="t",
        n_trials=10,
        sampler="random",
        seed=1,
        quiet=True,
        runner=RunnerChoice("ray"),
        preflight=False,
    )  # enough trials that the retry, queued behind the enqueued baseline and anchors, runs
    pool = RayPool([GROUP_A, GROUP_B], DiesOnceRunner(flag))
    try:
        assert run_study(config, pool) == 0
    finally:
        pool.release_all()
    trials = optuna.load_study(study_name="t", storage=url).trials
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(finished) == 10, "the study ends with the requested number of trials"
    assert len(failed) == 1 and failed[0].user_attrs[WORKER_FAULT]
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert retry.state == TrialState.COMPLETE and retry.params == failed[0].params
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    child = int(flag.read_text())
    assert process_gone(child, 30.0), "the engine process died with its actor"
    assert wait_all_gpus_free(ALL_GPUS) == ALL_GPUS, "every placement group was released"


def test_children_keep_their_exit_status_while_ray_runs(cluster: None) -> None:
    """Ray's subreaper mode would reap our children first (subprocess then reports 0)."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "raise SystemExit(3)"], check=False)
    assert child.returncode == 3


def test_two_drivers_sharing_a_node_group_get_disjoint_devices(cluster: None) -> None:
    """Two pools (as two drivers would hold) on one group: the shared ledger keeps their
    device ids apart, and ids of an owner whose placement group is gone are reused."""
    from runners.ray import LEDGER_NAME, LEDGER_NAMESPACE

    first = RayPool([GROUP_A], HoldRunner(3.0), fill_node_group=False)
    second = RayPool([GROUP_A], HoldRunner(3.0), fill_node_group=False)
    ledger = ray.get_actor(LEDGER_NAME, namespace=LEDGER_NAMESPACE)
    node = next(iter(first.capacity["a"].node_gpus))[0]
    # a driver that died holding two devices: its "placement group" never existed
    assert ray.get(ledger.allocate.remote(node, 8, 2, "0" * 36)) == [0, 1]
    workload = Workload("w", "random", 1)
    try:
        first.submit(0, tp(4), workload)
        second.submit(1, tp(4), workload)
        results = first.wait(30.0) + second.wait(30.0)
    finally:
        first.release_all()
        second.release_all()
    assert len(results) == 2
    ids = [set(done.placement.gpu_ids) for done in results if done.placement is not None]
    assert len(ids) == 2 and not ids[0] & ids[1]
    assert ids[0] | ids[1] == set(range(8)), "the dead owner's devices were reclaimed"


def test_a_spanning_trial_holds_one_bundle_on_each_of_two_nodes(cluster: None) -> None:
    """TP8 x PP2 on group a2: both of a's nodes, the whole of each; a one-node trial waits for
    it, then runs on one of them; everything is released."""
    pool = RayPool([GROUP_A2], HoldRunner(2.0), fill_node_group=False)
    assert pool.capacity["a2"].nodes == 2
    workload = Workload("w", "random", 1)
    try:
        pool.submit(0, spanning(), workload)
        pool.submit(1, tp(8), workload)
        held = pool.trial_nodes()
        assert list(held) == [0], "the one-node trial waits for the spanning one"
        assert len(set(held[0])) == 2, "one bundle on each of two nodes"
        assert pool.gpus_in_use() == 16
        finished = []
        deadline = time.monotonic() + 60
        while len(finished) < 2 and time.monotonic() < deadline:
            finished += pool.wait(1.0)
    finally:
        pool.release_all()
    by_key = {done.key: done for done in finished}
    assert sorted(by_key) == [0, 1]
    first = by_key[0].placement
    assert first is not None and len(first.nodes) == 2 and first.gpu_count == 16
    assert first.others_started and first.dist_port > 0
    assert wait_all_gpus_free(ALL_GPUS) == ALL_GPUS, "every placement group was released"


def test_a_spanning_trial_needs_enough_alive_nodes(cluster: None) -> None:
    """The space says b has two nodes; Ray has one node with b's resource."""
    pool = RayPool(
        [RayNodeGroup(NodeGroup("b2", "H100-SXM-80GB", 8, 2), "pool_b")], HoldRunner(0.0)
    )
    with pytest.raises(RayPoolError, match=r"needs 2 nodes of 8 GPUs.*pool_b"):
        pool.submit(0, spanning(), Workload("w", "random", 1))


class TestRayPoolConformance(TrialPoolConformance):
    """The TrialPool contract (runners.testing.pool) on the module's cluster."""

    starts_on_submit = workers_can_be_lost = sets_visible_devices = True
    node_group = GROUP_A.node_group
    spanning_node_group = GROUP_A2.node_group

    def make_spanning_pool(self, runner: Runner, fill_node_group: bool) -> TrialPool:
        return RayPool([GROUP_A2], runner, fill_node_group)

    @pytest.fixture(autouse=True)
    def _on_the_cluster(self, cluster: None) -> None:
        """Every test of the suite runs with the module's Ray cluster up."""

    def make_pool(self, runner: Runner, fill_node_group: bool) -> TrialPool:
        return RayPool([GROUP_A, GROUP_B], runner, fill_node_group)

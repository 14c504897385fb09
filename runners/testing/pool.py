"""Conformance suite for any `runners.pool.TrialPool`: subclass `TrialPoolConformance`.

The contract it checks, with probe runners defined here (importable by any worker process):
an idle pool has room and `wait` returns nothing; every submitted trial comes back exactly once
as a `Finished` with its key, its outcome and a `Placement` of as many GPUs as `trial_gpus`
says; an instance larger than a node holds two nodes of a `spanning_node_group` (each other
node's part started by the pool's own worker where it has one, with its devices and rank 0's
rendezvous port); room is finite; two trials in flight at the same time never hold the same GPU
of the same node; an exception raised by the runner reaches the driver from `wait`;
`release_all` is idempotent and leaves no trial (nor what a trial started) running; and, for
pools whose workers can be lost, a lost worker is a `Finished` without outcome and with a fault
text.

    class TestMyPool(TrialPoolConformance):
        starts_on_submit = workers_can_be_lost = sets_visible_devices = True

        def make_pool(self, runner: Runner, fill_node_group: bool) -> TrialPool:
            return MyPool([NODE_GROUP], runner, fill_node_group)

`node_group` must match the pool's (the suite sizes its candidates against it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

from runners import Runner
from runners.pool import Finished, TrialPool, trial_gpus
from runners.types import Candidate, NodeGroup, Placement, SettingValue, TrialOutcome, Workload

WORKLOAD = Workload("conformance", "random", 1, input_len=8, output_len=4)


def _qwen3_235b(settings: dict[str, SettingValue]) -> Candidate:
    model = "Qwen3-235B-A22B-Instruct-2507"
    return Candidate.make("vllm", "0.33.0", model, f"Qwen/{model}", "bf16", settings)


def tp(size: int) -> Candidate:
    """A candidate holding `size` GPUs when node groups are not filled."""
    return _qwen3_235b({"tensor-parallel-size": size})


def spanning() -> Candidate:
    """A candidate whose one instance needs two nodes of 8 GPUs (TP8 x PP2)."""
    return _qwen3_235b({"tensor-parallel-size": 8, "pipeline-parallel-size": 2})


class NodeProbeRunner:
    """Records what each node of a spanning trial was given: `start_node` (called by the
    pool's worker on that node) writes ``node-<rank>.json`` to `folder`; `run` waits (up to a
    minute) for the other nodes' files and reports rank 0's devices and rendezvous port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def start_node(self, candidate: Candidate, placement: Placement, rank: int) -> None:
        seen = {
            "devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "dist_port": placement.dist_port,
            "gpu_ids": list(placement.nodes[rank].gpu_ids),
        }
        (self.folder / f"node-{rank}.json").write_text(json.dumps(seen))

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        if placement.others_started:
            deadline = time.monotonic() + 60.0
            wanted = [self.folder / f"node-{r}.json" for r in range(1, len(placement.nodes))]
            while not all(p.exists() for p in wanted) and time.monotonic() < deadline:
                time.sleep(0.1)
        return TrialOutcome(
            "ok",
            artifacts=(
                ("cuda_visible_devices", os.environ.get("CUDA_VISIBLE_DEVICES", "")),
                ("dist_port", str(placement.dist_port)),
            ),
        )


class HoldRunner:
    """Holds its placement for `seconds`; reports when (wall clock) and what it saw."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        begin = time.time()
        time.sleep(self.seconds)
        return TrialOutcome(
            "ok",
            diagnostics=(("begin", begin), ("end", time.time())),
            artifacts=(("cuda_visible_devices", os.environ.get("CUDA_VISIBLE_DEVICES", "")),),
        )


class StartsAndHangsRunner:
    """Starts a child in its own session (as an engine starts), records both pids in `pid_file`
    and hangs: whatever ends the trial must end both."""

    def __init__(self, pid_file: Path) -> None:
        self.pid_file = pid_file

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
        )
        self.pid_file.write_text(f"{os.getpid()} {child.pid}")
        time.sleep(600)
        return TrialOutcome("ok")


class FailingRunner:
    """Raises: a runner bug, which must reach the driver rather than be swallowed."""

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        raise RuntimeError("probe runner failed on purpose")


class DyingRunner:
    """Kills its own process, as the OOM killer or a lost node would end a worker."""

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        os.kill(os.getpid(), signal.SIGKILL)
        return TrialOutcome("ok")


class TrialPoolConformance:
    """The contract of a `TrialPool`; pytest collects it through a ``Test...`` subclass."""

    node_group: ClassVar[NodeGroup] = NodeGroup("a", "H100-SXM-80GB", 8)
    starts_on_submit: ClassVar[bool] = False
    """Trials start when submitted, not when the driver calls `wait` (InlinePool)."""
    workers_can_be_lost: ClassVar[bool] = False
    """Trials run in worker processes that can die without the driver (Ray actors)."""
    sets_visible_devices: ClassVar[bool] = False
    """The trial's process sees exactly its placement's devices as CUDA_VISIBLE_DEVICES."""
    timeout_s: ClassVar[float] = 60.0

    spanning_node_group: ClassVar[NodeGroup | None] = None
    """A node group of two nodes of 8 GPUs for `make_spanning_pool` (None: not checked)."""

    def make_pool(self, runner: Runner, fill_node_group: bool) -> TrialPool:
        raise NotImplementedError("a TrialPoolConformance subclass must implement make_pool")

    def make_spanning_pool(self, runner: Runner, fill_node_group: bool) -> TrialPool:
        """A pool on `spanning_node_group`."""
        raise NotImplementedError("set spanning_node_group and implement make_spanning_pool")

    def collect(self, pool: TrialPool, count: int) -> list[Finished]:
        """Wait until `count` trials have finished (or the suite's timeout passes)."""
        finished: list[Finished] = []
        deadline = time.monotonic() + self.timeout_s
        while len(finished) < count and time.monotonic() < deadline:
            finished += pool.wait(1.0)
        return finished

    # --- the contract -------------------------------------------------------------------------

    def test_an_idle_pool_has_room_and_nothing_finished(self) -> None:
        pool = self.make_pool(HoldRunner(0.0), fill_node_group=True)
        try:
            assert pool.has_room()
            assert pool.wait(0.1) == []
        finally:
            pool.release_all()

    @pytest.mark.parametrize("fill_node_group", [True, False])
    def test_a_trial_comes_back_once_with_its_key_and_placement(
        self, fill_node_group: bool
    ) -> None:
        pool = self.make_pool(HoldRunner(0.0), fill_node_group)
        candidate = tp(2)
        try:
            pool.submit(7, candidate, WORKLOAD)
            [done] = self.collect(pool, 1)
            assert pool.wait(0.1) == [], "a trial is finished only once"
        finally:
            pool.release_all()
        assert done.key == 7
        assert done.outcome is not None and done.outcome.status == "ok"
        assert done.placement is not None
        gpus = trial_gpus(candidate, self.node_group, fill_node_group)
        assert len(done.placement.gpu_ids) == gpus == (8 if fill_node_group else 2)
        assert len(set(done.placement.gpu_ids)) == gpus
        assert done.placement.node_group.gpu == self.node_group.gpu
        if self.sets_visible_devices:
            visible = dict(done.outcome.artifacts)["cuda_visible_devices"]
            assert visible == ",".join(str(i) for i in done.placement.gpu_ids)

    @pytest.mark.parametrize("fill_node_group", [True, False])
    def test_an_instance_larger_than_a_node_holds_several_nodes(
        self, fill_node_group: bool, tmp_path: Path
    ) -> None:
        group = self.spanning_node_group
        if group is None:
            pytest.skip("this suite was given no node group of several nodes")
        pool = self.make_spanning_pool(NodeProbeRunner(tmp_path), fill_node_group)
        try:
            pool.submit(3, spanning(), WORKLOAD)
            [done] = self.collect(pool, 1)
        finally:
            pool.release_all()
        assert done.outcome is not None and done.outcome.status == "ok"
        placement = done.placement
        assert placement is not None
        assert (placement.node_group.nodes, placement.node_group.gpus_per_node) == (2, 8)
        assert placement.node_group.inter_node_gb_s == group.inter_node_gb_s
        assert len(placement.nodes) == 2
        assert all(len(set(node.gpu_ids)) == 8 for node in placement.nodes)
        assert placement.gpu_count == trial_gpus(spanning(), group, fill_node_group) == 16
        artifacts = dict(done.outcome.artifacts)
        if self.sets_visible_devices:
            assert artifacts["cuda_visible_devices"] == ",".join(map(str, placement.gpu_ids))
        if placement.others_started:  # the pool's own worker started node 1's part
            node = json.loads((tmp_path / "node-1.json").read_text())
            assert node["gpu_ids"] == list(placement.others[0].gpu_ids)
            assert node["devices"] == ",".join(map(str, placement.others[0].gpu_ids))
            assert node["dist_port"] == placement.dist_port == int(artifacts["dist_port"]) > 0

    def test_room_is_finite(self) -> None:
        pool = self.make_pool(HoldRunner(30.0), fill_node_group=True)
        try:
            submitted = 0
            while pool.has_room() and submitted < 64:
                pool.submit(submitted, tp(8), WORKLOAD)
                submitted += 1
            assert not pool.has_room(), f"room for more than {submitted} whole-node trials"
        finally:
            pool.release_all()

    def test_trials_in_flight_together_never_share_a_gpu(self) -> None:
        pool = self.make_pool(HoldRunner(1.0), fill_node_group=False)
        sizes = [4, 2, 2, 4, 1, 1, 2]
        pending = list(enumerate(sizes))
        finished: list[Finished] = []
        deadline = time.monotonic() + self.timeout_s
        try:
            while (pending or len(finished) < len(sizes)) and time.monotonic() < deadline:
                while pending and pool.has_room():
                    key, size = pending.pop(0)
                    pool.submit(key, tp(size), WORKLOAD)
                finished += pool.wait(1.0)
        finally:
            pool.release_all()
        assert sorted(done.key for done in finished) == list(range(len(sizes)))
        spans = []
        for done in finished:
            assert done.outcome is not None and done.placement is not None
            times = dict(done.outcome.diagnostics)
            devices = {(done.node, gpu) for gpu in done.placement.gpu_ids}
            assert len(done.placement.gpu_ids) == sizes[done.key]
            spans.append((times["begin"], times["end"], devices, done.key))
        for begin, end, devices, key in spans:
            for other_begin, other_end, other_devices, other in spans:
                if other != key and begin < other_end and other_begin < end:
                    assert not devices & other_devices, f"trials {key} and {other} shared GPUs"

    def test_a_runner_exception_reaches_the_driver(self) -> None:
        pool = self.make_pool(FailingRunner(), fill_node_group=True)
        try:
            pool.submit(1, tp(8), WORKLOAD)
            with pytest.raises(RuntimeError, match="failed on purpose"):
                self.collect(pool, 1)
            assert pool.wait(0.1) == []
        finally:
            pool.release_all()

    def test_release_all_is_idempotent_and_leaves_nothing_running(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "pids"
        pool = self.make_pool(StartsAndHangsRunner(pid_file), fill_node_group=True)
        pool.submit(1, tp(8), WORKLOAD)
        if self.starts_on_submit:  # let the trial get going (and start its child) first
            deadline = time.monotonic() + self.timeout_s
            while not pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert pid_file.exists(), "the submitted trial did not start"
        pool.release_all()
        pool.release_all()
        assert pool.has_room()
        assert pool.wait(0.1) == []
        if pid_file.exists():
            for pid in (int(p) for p in pid_file.read_text().split()):
                assert process_gone(pid, self.timeout_s), f"process {pid} outlived release_all"

    def test_a_lost_worker_is_finished_without_outcome(self) -> None:
        if not self.workers_can_be_lost:
            pytest.skip("this pool runs trials in the driver's own process")
        pool = self.make_pool(DyingRunner(), fill_node_group=True)
        try:
            pool.submit(4, tp(8), WORKLOAD)
            [done] = self.collect(pool, 1)
        finally:
            pool.release_all()
        assert done.key == 4
        assert done.outcome is None
        assert done.fault.strip(), "a lost worker says why"


def process_gone(pid: int, within_s: float) -> bool:
    """True once `pid` has exited (a zombie counts as exited), waiting up to `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in status:
            return True
        time.sleep(0.2)
    return False

"""The driver with trials in flight: a scripted pool (no Ray) that finishes trials out of order,
loses workers, and is interrupted; the study must stay exact and every trial be told once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optimizer.loop import run_study
from optimizer.record import WORKER_FAULT
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.pool import Finished, InlinePool, trial_gpus, trial_placement
from runners.types import Candidate, NodeGroup, Workload
from tests.optimizer.test_driver import ScriptedRunner, config


class ScriptedPool:
    """Holds up to `slots` trials; `wait` finishes the newest first (out of submission order).

    `lose` decides, per submission index, that the worker is lost instead of finishing.
    """

    def __init__(
        self,
        slots: int,
        lose: Callable[[int], bool] = lambda i: False,
        interrupt_at: int | None = None,
    ) -> None:
        self.slots = slots
        self.lose = lose
        self.interrupt_at = interrupt_at
        self.runner = ScriptedRunner()
        self.held: list[tuple[int, Candidate, Workload]] = []
        self.submitted: list[int] = []
        self.most_in_flight = 0
        self.released = 0

    def has_room(self) -> bool:
        return len(self.held) < self.slots

    def submit(self, key: int, candidate: Candidate, workload: Workload) -> None:
        assert len(self.held) < self.slots, "the driver submitted beyond has_room"
        self.held.append((key, candidate, workload))
        self.submitted.append(key)
        self.most_in_flight = max(self.most_in_flight, len(self.held))
        if self.interrupt_at is not None and len(self.submitted) == self.interrupt_at:
            raise KeyboardInterrupt

    def wait(self, timeout_s: float) -> list[Finished]:
        if not self.held:
            return []
        key, candidate, workload = self.held.pop()
        index = self.submitted.index(key)
        if self.lose(index):
            return [Finished(key, None, fault="ActorDiedError: the actor died unexpectedly")]
        group = NodeGroup("h100x8", "H100-SXM-80GB", 8)
        placement = trial_placement(group, tuple(range(8)))
        return [Finished(key, self.runner.run(candidate, workload, placement), placement)]

    def release_all(self) -> None:
        self.released += len(self.held)
        self.held.clear()


def trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'study.db'}").trials


def test_keeps_the_pool_full_and_stops_at_exactly_the_total(
    tmp_path: Path, spec: StudySpec
) -> None:
    pool = ScriptedPool(slots=4)
    assert run_study(config(spec, tmp_path, 14), pool) == 0
    assert pool.most_in_flight == 4
    done = trials(tmp_path)
    assert len(done) == 14 and len(pool.submitted) == 14
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in done)
    assert done[0].user_attrs["baseline"] is True
    assert all("placement" in t.user_attrs for t in done)
    again = ScriptedPool(slots=4)
    assert run_study(config(spec, tmp_path, 14), again) == 0
    assert again.submitted == [], "a finished study reruns nothing"


def test_lost_workers_are_failed_and_retried_with_the_same_parameters(
    tmp_path: Path, spec: StudySpec
) -> None:
    pool = ScriptedPool(slots=3, lose=lambda i: i in (1, 4))
    assert run_study(config(spec, tmp_path, 9), pool) == 0
    done = trials(tmp_path)
    failed = [t for t in done if t.state == TrialState.FAIL]
    finished = [t for t in done if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(failed) == 2 and len(finished) == 9
    for lost in failed:
        assert lost.user_attrs[WORKER_FAULT].startswith("ActorDiedError")
        retries = [t for t in done if t.system_attrs.get("failed_trial") == lost.number]
        assert len(retries) == 1, "each lost trial is retried exactly once"
        assert retries[0].params == lost.params
        assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert WORKER_FAULT not in retries[0].user_attrs


def test_every_lost_worker_stops_the_driver(tmp_path: Path, spec: StudySpec) -> None:
    pool = ScriptedPool(slots=2, lose=lambda i: True)
    assert run_study(config(spec, tmp_path, 5), pool) == 1
    done = trials(tmp_path)
    assert not [t for t in done if t.state == TrialState.RUNNING]
    assert all(t.state in (TrialState.FAIL, TrialState.WAITING) for t in done)


def test_interrupt_fails_every_trial_in_flight(tmp_path: Path, spec: StudySpec) -> None:
    pool = ScriptedPool(slots=3, interrupt_at=3)
    assert run_study(config(spec, tmp_path, 10), pool) == 130
    asked = [t for t in trials(tmp_path) if t.state != TrialState.WAITING]  # enqueued: not asked
    assert [t.state for t in asked] == [TrialState.FAIL] * 3
    assert pool.released == 3
    assert run_study(config(spec, tmp_path, 10), ScriptedPool(slots=3)) == 0
    finished = [t for t in trials(tmp_path) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 10


def test_trial_size_follows_the_fill_rule(spec: StudySpec) -> None:
    group = spec.node_group
    tp2 = Candidate.make(
        "vllm", "0.33.0", spec.model.name, "x", "bf16", {"tensor-parallel-size": 2}
    )
    tp2_dp2 = Candidate.make(
        "vllm",
        "0.33.0",
        spec.model.name,
        "x",
        "bf16",
        {"tensor-parallel-size": 2, "data-parallel-size": 2},
    )
    assert trial_gpus(tp2, group, fill_node_group=True) == 8
    assert trial_gpus(tp2, group, fill_node_group=False) == 2
    assert trial_gpus(tp2_dp2, group, fill_node_group=False) == 4


def test_inline_pool_is_one_trial_at_a_time(spec: StudySpec) -> None:
    pool = InlinePool(ScriptedRunner(), spec.node_group)
    candidate = Candidate.make("vllm", "0.33.0", spec.model.name, "x", "bf16", {})
    pool.submit(7, candidate, spec.workload_spec)
    assert not pool.has_room()
    [done] = pool.wait(0.0)
    assert done.key == 7 and done.outcome is not None and done.outcome.status == "ok"
    assert done.placement is not None and done.placement.gpu_ids == tuple(range(8))
    assert pool.has_room()


def with_hardware(
    shipped_space: dict[str, object],
    write_space: Callable[[dict[str, object]], Path],
    hardware: dict[str, object],
) -> Path:
    return write_space({**shipped_space, "hardware": hardware})


H100 = {"gpu": "H100-SXM-80GB", "gpus_per_node": 8}


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([{"name": "h100_group_1", **H100}], "'h100_group_1' contains '_group_'"),
        ([{"name": "a", "ray_resource": "pool_group_a", **H100}], "Ray reads resource names"),
        ([{"name": "a", "ray_resource": "GPU", **H100}], "one of Ray's own resource names"),
        (
            [{"name": "a", **H100}, {"name": "b", "gpu": "H200", "gpus_per_node": 8}],
            "must be interchangeable",
        ),
        ([{"name": "a", **H100}, {"name": "a", **H100}], "'a' is given twice"),
    ],
)
def test_node_groups_that_ray_cannot_place_are_rejected(
    shipped_space: dict[str, object],
    write_space: Callable[[dict[str, object]], Path],
    groups: list[dict[str, object]],
    expected: str,
) -> None:
    from optimizer.errors import SpecError

    path = with_hardware(shipped_space, write_space, {"node_groups": groups})
    with pytest.raises(SpecError, match="hardware") as error:
        load_spec(path)
    assert expected in str(error.value)


def test_several_node_groups_with_ray_identities(
    shipped_space: dict[str, object], write_space: Callable[[dict[str, object]], Path]
) -> None:
    hardware = {
        "fill_node_group": False,
        "node_groups": [
            {"name": "a", "nodes": 2, "ray_resource": "pool_a", **H100},
            {"name": "b", "ray_label": "zone=b", **H100},
        ],
    }
    spec = load_spec(with_hardware(shipped_space, write_space, hardware))
    assert [g.name for g in spec.node_groups] == ["a", "b"]
    assert spec.node_group.total_gpus == 16
    assert [g.resource for g in spec.hardware.node_groups] == ["pool_a", "b"]
    assert spec.hardware.node_groups[1].label == ("zone", "b")
    assert spec.hardware.fill_node_group is False

"""The typed trial record reads every study this project wrote, old keys included."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from optimizer.record import InstanceShape, read
from optimizer.report.pareto import Point

PARAMS = {"engine": "vllm", "model_variant": "fp8"}
DISTRIBUTIONS = {
    "engine": CategoricalDistribution(["vllm", "sglang"]),
    "model_variant": CategoricalDistribution(["bf16", "fp8"]),
}


def trial(state: TrialState = TrialState.COMPLETE, **attrs: object) -> optuna.trial.FrozenTrial:
    values = [1000.0, 50.0] if state == TrialState.COMPLETE else None
    return create_trial(
        state=state,
        values=values,
        params=PARAMS,
        distributions=DISTRIBUTIONS,
        user_attrs=attrs,
    )


def test_the_shape_every_runner_reports_now() -> None:
    record = read(
        trial(runner={"name": "local", "wall_s": 3.5, "replicas": 1, "gpus_per_replica": 2})
    )
    assert record.shape == InstanceShape(1, 2)
    assert record.placement_text == "1 x 2 GPUs"
    assert record.runner is not None and record.runner.wall_s == 3.5


def test_old_simulator_studies_keep_their_shape() -> None:
    record = read(
        trial(runner={"name": "sim", "replicas": 2, "gpus_used": 8, "trial_seconds": 90})
    )
    assert str(record.shape) == "2 x 4 GPUs"
    assert record.runner is not None and record.runner.value("trial_seconds") == 90


def test_an_unrecorded_shape_reads_as_unknown_not_one_gpu() -> None:
    """Old LocalRunner trials recorded no shape: the report says so instead of '1 x 1 GPUs'."""
    record = read(trial(runner={"name": "local", "startup_s": 12.0}, serve_command="vllm serve m"))
    assert record.shape is None
    assert Point.of(record).placement == "unknown"
    assert Point.of(record).deploy_hint is None


def test_marks_crashes_and_facts() -> None:
    rejected = read(
        trial(
            TrialState.PRUNED,
            engine="vllm",
            crash_class="rejected:weights_oom",
            crash_message="does not fit",
            crash_probability=1.0,
            anchor="vllm fp8 defaults",
        )
    )
    assert rejected.is_rejection and not rejected.is_runner_crash
    assert rejected.anchor == "vllm fp8 defaults" and not rejected.baseline
    assert rejected.weight_dtype == "fp8" and rejected.crash_probability == 1.0
    crashed = read(trial(TrialState.PRUNED, crash_class="oom:runtime", crash_phase="benchmark"))
    assert crashed.is_runner_crash and crashed.crash_phase == "benchmark"
    base = read(trial(baseline=True, metrics={"p99_ttft_ms": 10.0}))
    assert base.baseline and base.metrics == {"p99_ttft_ms": 10.0}
    assert (base.throughput, base.latency) == (1000.0, 50.0)
    assert base.feasible and base.engine == "vllm"  # from the parameters when not recorded

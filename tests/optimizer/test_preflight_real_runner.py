"""Pre-flight with a runner that measures an engine: only certain memory failures are rejected.

Near the memory boundary (Qwen3-32B on one H100 at 40,960 tokens: the memory model puts the KV
pool 1.2 GiB short, yet such runs were measured to work) the simulated runner keeps rejecting,
while a real runner launches the configuration, stores the crash probability pre-flight gave it,
and records whatever the engine does. The end-to-end test runs the study loop against the engine
emulator (a real HTTP engine in its own process) through LocalRunner.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import optuna
import pytest

from optimizer.config import RunnerChoice, StudyConfig
from optimizer.feasibility import FeasibilityChecker
from optimizer.loop import run_study
from optimizer.record import is_rejection, read
from optimizer.space import candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.engines import resolve_candidate
from runners.local import EmulatorLaunch, LocalRunner

SPACE = """
name: boundary-{percent}
model: {{name: Qwen3-32B, variants: {{bf16: Qwen/Qwen3-32B}}}}
hardware:
  node_groups: [{{name: one, gpu: H100-SXM-80GB, gpus_per_node: 1}}]
workload: {{name: small, dataset: random, num_prompts: 8, input_len: 64, output_len: 8}}
objectives:
  throughput: {{metric: output_throughput}}
  latency: {{metric: tpot, percentile: 99}}
baseline: {{engine: vllm, variant: bf16, settings: {{gpu-memory-utilization: {fraction}}}}}
engines:
  vllm:
    version: "0.11.0"
    settings:
      gpu-memory-utilization: {{type: categorical, choices: [{fraction}]}}
"""


def space(folder: Path, percent: int) -> StudySpec:
    """Qwen3-32B at its full 40,960 tokens with `percent` % of the GPU for vLLM."""
    path = folder / f"space-{percent}.yaml"
    path.write_text(SPACE.format(percent=percent, fraction=percent / 100))
    return load_spec(path)


def verdict(spec: StudySpec, real_runner: bool):  # type: ignore[no-untyped-def]
    fraction = int(spec.name.split("-")[1]) / 100
    params = {"engine": "vllm", "model_variant": "bf16", "vllm.gpu-memory-utilization": fraction}
    checker = FeasibilityChecker(spec, real_runner=real_runner)
    candidate = resolve_candidate(candidate_from_params(spec, params), spec.node_group)
    return checker.check(candidate, params, {}, [])


def test_near_the_boundary_only_a_real_runner_launches(tmp_path: Path) -> None:
    near = space(tmp_path, 90)
    simulated = verdict(near, real_runner=False)
    assert not simulated.launch and simulated.reason == "kv_below_max_model_len"
    real = verdict(near, real_runner=True)
    assert real.launch
    assert real.crash_probability is not None and 0.5 < real.crash_probability < 0.99


def test_a_certain_failure_is_rejected_for_a_real_runner_too(tmp_path: Path) -> None:
    far = verdict(space(tmp_path, 82), real_runner=True)
    assert not far.launch and far.reason == "kv_below_max_model_len"
    assert far.crash_probability is not None and far.crash_probability >= 0.99
    assert "p(crash)" in far.message


def test_runner_choices_that_measure_an_engine() -> None:
    assert RunnerChoice("local").measures_engine
    assert RunnerChoice("emulator", emulator_scale=5.0).measures_engine
    assert RunnerChoice("ray", ray_worker="local").measures_engine
    assert not RunnerChoice("sim").measures_engine
    assert not RunnerChoice("ray", ray_worker="sim").measures_engine


@pytest.mark.slow
def test_a_real_runner_runs_the_boundary_and_records_the_outcome(tmp_path: Path) -> None:
    spec = space(tmp_path, 90)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = StudyConfig.of(
        spec, storage=url, n_trials=1, quiet=True, anchors=False, runner=RunnerChoice("local")
    )
    runner = LocalRunner(
        tmp_path / "trials",
        emulator=EmulatorLaunch(time_scale=20.0, startup_s=0.2),
        num_warmups=0,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_study(config, runner) == 0
    (trial,) = optuna.load_study(study_name=spec.name, storage=url).trials
    record = read(trial)
    assert not is_rejection(trial), record.crash_message
    assert record.runner is not None and record.runner.name == "local"
    assert record.crash_probability is not None and 0.5 < record.crash_probability < 0.99
    # the engine decided: it ran and completed, or it crashed with its own error
    assert record.state == optuna.trial.TrialState.COMPLETE or record.crash_class

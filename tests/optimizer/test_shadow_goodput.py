"""The shadow simulator on a goodput objective and on several workloads: it predicts the whole
trial (the runner's load search on the calibrated simulator, every workload, the objective as
the study computes it), learns from every load step and every workload a trial measured, and
screening scores the goodput gain.

The studies run the emulated engine in process (`SimRunner` with a truth profile) under the
emulator's runner choice, as tests/optimizer/test_shadow.py does.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from optimizer.config import RunnerChoice, StudyConfig
from optimizer.loop import run_study
from optimizer.objectives import trial_values
from optimizer.predicted import prediction_rows
from optimizer.predictors import SimPredictor
from optimizer.record import ANCHOR, BASELINE, METRICS
from optimizer.report.build import write_report
from optimizer.screening import SCREENED, predicted_point
from optimizer.shadow import ShadowSimulator
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from optimizer.workload_runs import WORKLOAD_RUNS, read_runs
from runners.local import EmulatorLaunch, LocalRunner
from runners.sim.runner import SimRunner
from tests.optimizer.test_shadow import config_of, emulated

HEAD = """\
name: shadow-goodput
model:
  name: Qwen3-8B
  variants: {bf16: Qwen/Qwen3-8B}
hardware:
  node_groups:
    - {name: h100x1, gpu: H100-SXM-80GB, gpus_per_node: 1, nodes: 1}
"""
ONE = "workload: {name: burst, dataset: sharegpt-like, num_prompts: 60, seed: 0}\n"
TWO = """\
workloads:
  - {name: chat, dataset: sharegpt-like, num_prompts: 60, seed: 0, weight: 3}
  - {name: long, dataset: random, num_prompts: 20, input_len: 2000, output_len: 100, seed: 0}
"""
OBJECTIVES = """\
objectives:
  throughput: {metric: output_throughput, scope: node_group}
  latency: {metric: tpot, percentile: 99}
"""
GOODPUT = """\
  goodput: {load: request_rate}
  slos: [{metric: p99_ttft_ms, max: 300}]
"""
TAIL = """\
baseline:
  engine: vllm
  variant: bf16
  settings: {max-num-seqs: 64}
engines:
  vllm:
    version: "0.33.0"
    settings:
      max-num-seqs: {type: categorical, choices: [8, 16, 32, 64]}
search: {n_trials: 4, sampler: tpe, seed: 0}
"""
# the "real" engine is 40% slower than the study's simulator thinks
PROFILE = "engines: {vllm: {compute_efficiency: 0.6, memory_bandwidth_efficiency: 0.6}}\n"


def space(tmp_path: Path, text: str) -> tuple[StudySpec, Path]:
    (tmp_path / "space.yaml").write_text(text)
    (tmp_path / "truth.yaml").write_text(PROFILE)
    return load_spec(tmp_path / "space.yaml"), tmp_path / "truth.yaml"


@pytest.mark.parametrize("workloads", [ONE, TWO])
def test_a_trial_is_predicted_as_the_simulated_runner_measures_it(
    tmp_path: Path, workloads: str
) -> None:
    """Uncalibrated, the shadow's prediction is what the embedded simulator's runner measures:
    the same load search, the same knee, the same combination of workloads."""
    spec, _ = space(tmp_path, HEAD + workloads + OBJECTIVES + GOODPUT + TAIL)
    shadow = ShadowSimulator(spec)
    for seqs in (8, 64):
        config = config_of(spec, seqs)
        outcome = SimRunner().simulate_config(config, shadow.workload)
        measured = trial_values(outcome, spec)
        stored = shadow.foretell(config)
        assert (stored.throughput, stored.latency) == pytest.approx(measured.values)
        if workloads == TWO:
            assert [name for name, _, _ in stored.workloads] == ["chat", "long"]
            assert [v[1:] for v in stored.workloads] == pytest.approx(
                [r.values for r in measured.runs]
            )
    # the knee is found to within the search's tolerance: the spread says so
    plain = ShadowSimulator(load_spec_without_goodput(tmp_path, workloads))
    assert (
        shadow.foretell(config_of(spec, 8)).log_sigma
        > plain.foretell(config_of(plain.spec, 8)).log_sigma
    )


def load_spec_without_goodput(tmp_path: Path, workloads: str) -> StudySpec:
    other = tmp_path / "plain"
    other.mkdir(exist_ok=True)
    return space(other, HEAD + workloads + OBJECTIVES + TAIL)[0]


def test_a_goodput_study_learns_from_every_load_step_and_screens_by_goodput_gain(
    tmp_path: Path,
) -> None:
    spec, profile = space(tmp_path, HEAD + ONE + OBJECTIVES + GOODPUT + TAIL)
    study = emulated(tmp_path, spec, profile, screening=True, n_trials=4)
    rows = prediction_rows(study.trials)
    assert [r.number for r in rows] == [0, 1, 2, 3]
    assert [r.prediction.n_runs for r in rows] == [0, 1, 2, 3]
    # the source names the trials learned from, not the three benchmarks each search kept
    assert [r.prediction.source.removesuffix(" (poor fit)") for r in rows[1:]] == [
        "calibrated on 1 trial",
        "calibrated on 2 trials",
        "calibrated on 3 trials",
    ]
    # the shipped calibration is 40% too fast; the first goodput trial corrects it
    first, later = rows[0].throughput_error, [r.throughput_error for r in rows[1:]]
    assert first is not None and first > 0.2
    assert all(e is not None and e < first / 3 for e in later), (first, later)
    sampled = [t for t in study.trials if not ({BASELINE, ANCHOR} & set(t.user_attrs))]
    assert sampled and all(SCREENED in t.user_attrs for t in sampled)
    # the refit learns the saturated (unbounded), knee and lightest loads of each search, each
    # one measurement at the rate the search sent it
    shadow = ShadowSimulator(spec)
    assert shadow.refresh(study.get_trials()) and shadow.n_runs == 4
    for trial in study.trials:
        (run,) = read_runs(trial.user_attrs[WORKLOAD_RUNS])
        learned = shadow.learned[trial.number].observations
        knee = run.knee or min(run.probes, key=lambda p: p.load)
        loads = {math.inf, knee.load, min(p.load for p in run.probes)}
        assert len(run.probes) > 3 and {o.workload.request_rate for o in learned} == loads
        assert len(learned) == len(loads)
    md = write_report(study, tmp_path / "report").markdown.read_text()
    assert "## Simulator against measurement" in md
    assert "goodput median error" in md.split("## Simulator against measurement")[1]


def test_a_study_of_several_workloads_learns_each_and_predicts_the_combination(
    tmp_path: Path,
) -> None:
    spec, profile = space(tmp_path, HEAD + TWO + OBJECTIVES + TAIL)
    study = emulated(tmp_path, spec, profile, screening=True, n_trials=3)
    rows = prediction_rows(study.trials)
    assert [r.prediction.n_runs for r in rows] == [0, 1, 2]
    first, later = rows[0].throughput_error, [r.throughput_error for r in rows[1:]]
    assert first is not None and first > 0.2
    assert all(e is not None and e < first / 3 for e in later), (first, later)
    for row in rows:  # the weighted mean of each workload's prediction (weights 3 and 1)
        (_, chat, _), (_, long, _) = row.prediction.workloads
        assert row.prediction.throughput == pytest.approx((3 * chat + long) / 4)
    shadow = ShadowSimulator(spec)
    assert shadow.refresh(study.get_trials())
    for learned in shadow.learned.values():
        assert [o.workload.name for o in learned.observations] == ["chat", "long"]
    section = write_report(study, tmp_path / "report").markdown.read_text()
    section = section.split("## Simulator against measurement")[1]
    assert "| workload chat | 3 |" in section and "| workload long | 3 |" in section


def test_the_worst_case_combination_is_predicted_as_the_study_combines(tmp_path: Path) -> None:
    objectives = OBJECTIVES + "  combine: worst\n"
    spec, _ = space(tmp_path, HEAD + TWO + objectives + TAIL)
    stored = ShadowSimulator(spec).foretell(config_of(spec, 16))
    (_, tput_a, lat_a), (_, tput_b, lat_b) = stored.workloads
    assert tput_a != tput_b
    assert (stored.throughput, stored.latency) == (min(tput_a, tput_b), max(lat_a, lat_b))


@pytest.mark.slow
def test_a_goodput_study_over_the_real_http_emulator_is_predicted_and_reported(
    tmp_path: Path,
) -> None:
    """Real processes over HTTP: each load step a real benchmark, the refit learns them (a
    short search from a load near the knee, so that the low loads do not take minutes)."""
    quick = GOODPUT.replace(
        "{load: request_rate}", "{load: request_rate, start: 2, growth: 4, max_probes: 4}"
    ).replace("max: 300", "max: 600")  # room for the HTTP overhead the time scale multiplies
    spec, profile = space(tmp_path, HEAD + ONE + OBJECTIVES + quick + TAIL)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = StudyConfig.of(
        spec,
        storage=url,
        n_trials=2,
        quiet=True,
        runner=RunnerChoice("emulator", emulator_scale=5.0, emulator_profile=profile),
        screening=True,
    )
    runner = LocalRunner(
        tmp_path / "trials",
        emulator=EmulatorLaunch(time_scale=5.0, startup_s=0.2, profile=profile),
        num_warmups=0,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_study(config, runner) == 0
    study = optuna.load_study(study_name=spec.name, storage=url)
    rows = prediction_rows(study.trials)
    assert [r.prediction.n_runs for r in rows] == [0, 1]
    assert all(r.throughput_error is not None for r in rows)  # a goodput measured, predicted
    shadow = ShadowSimulator(spec)
    assert shadow.refresh(study.get_trials())
    searched = 0
    for trial in study.trials:  # each load search's saturated, knee and lightest loads
        (run,) = read_runs(trial.user_attrs[WORKLOAD_RUNS])
        knee = run.knee or min(run.probes, key=lambda p: p.load)
        loads = {max(p.load for p in run.probes), knee.load, min(p.load for p in run.probes)}
        assert len(shadow.learned[trial.number].observations) == len(loads)
        searched += len(run.probes) > 1
    assert searched  # the unbounded burst broke the SLO at least once: a real search ran
    md = write_report(study, tmp_path / "report").markdown.read_text()
    assert "goodput median error" in md


def test_a_trial_whose_stored_measurements_cannot_be_read_is_set_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = space(tmp_path, HEAD + ONE + OBJECTIVES + GOODPUT + TAIL)
    params = {"engine": "vllm", "model_variant": "bf16", "vllm.max-num-seqs": 16}
    broken = optuna.trial.create_trial(
        params=params,
        distributions={
            "engine": CategoricalDistribution(["vllm"]),
            "model_variant": CategoricalDistribution(["bf16"]),
            "vllm.max-num-seqs": CategoricalDistribution([8, 16, 32, 64]),
        },
        values=[100.0, 10.0],
        user_attrs={METRICS: {"completed": 60}},  # a metrics record cut short
    )
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(broken)
    shadow = ShadowSimulator(spec)
    assert not shadow.refresh(study.get_trials())
    assert list(shadow.set_aside) == [0] and shadow.fit is None and shadow.n_runs == 0
    assert "trial 0: its stored metrics are incomplete" in capsys.readouterr().err
    assert not shadow.refresh(study.get_trials())  # said once
    assert capsys.readouterr().err == ""


def test_screening_scores_the_combination_of_several_workloads(tmp_path: Path) -> None:
    """The point screening scores is the study's combined value, not the first workload's: in
    a simulated study (the simulator as predictor) and a real one (the shadow simulator)."""
    spec, _ = space(tmp_path, HEAD + TWO + OBJECTIVES + TAIL)
    shadow = ShadowSimulator(spec)
    config = config_of(spec, 16)
    measured = trial_values(SimRunner().simulate_config(config, shadow.workload), spec)
    first_alone = trial_values(
        SimRunner().simulate_config(config, shadow.workload.alone()), spec
    ).values
    assert measured.values != pytest.approx(first_alone)
    for predictor in (SimPredictor(), shadow):
        point = predicted_point(predictor.predict(config, shadow.workload), spec)
        assert point == pytest.approx(measured.values)

"""The shadow simulator of a real study: it predicts each trial before it runs, stores the
prediction, learns from each measurement, and screens with what it learned.

The quick tests run the study loop with the emulated engine in process (`SimRunner` with a truth
profile) under the emulator's runner choice; the slow one runs the real HTTP emulator.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import optuna
import pytest

from optimizer import shadow as shadow_module
from optimizer.config import RunnerChoice, StudyConfig
from optimizer.loop import run_study
from optimizer.predicted import PREDICTION, prediction_rows, read_prediction
from optimizer.record import ANCHOR, BASELINE
from optimizer.report.build import write_report
from optimizer.screening import SCREENED
from optimizer.shadow import ShadowSimulator, metrics_from_flat, study_shadow
from optimizer.space import candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.engines import resolve_candidate
from runners.errors import CalibrationError
from runners.local import EmulatorLaunch, LocalRunner
from runners.sim.fit import Observation, fit_calibration
from runners.sim.profile import load_profile
from runners.sim.runner import SimRunner
from runners.types import ServingConfig

SPACE = """\
name: shadow-test
model:
  name: Qwen3-8B
  variants: {bf16: Qwen/Qwen3-8B}
hardware:
  node_groups:
    - {name: h100x1, gpu: H100-SXM-80GB, gpus_per_node: 1, nodes: 1}
workload: {name: burst, dataset: sharegpt-like, num_prompts: 60, seed: 0}
objectives:
  throughput: {metric: output_throughput, scope: node_group}
  latency: {metric: tpot, percentile: 99}
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


@pytest.fixture()
def files(tmp_path: Path) -> tuple[StudySpec, Path]:
    (tmp_path / "space.yaml").write_text(SPACE)
    (tmp_path / "truth.yaml").write_text(PROFILE)
    return load_spec(tmp_path / "space.yaml"), tmp_path / "truth.yaml"


def emulated(
    tmp_path: Path, spec: StudySpec, profile: Path, screening: bool, n_trials: int = 4
) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = StudyConfig.of(
        spec,
        storage=url,
        n_trials=n_trials,
        quiet=True,
        runner=RunnerChoice("emulator", emulator_scale=5.0, emulator_profile=profile),
        screening=screening,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_study(config, SimRunner(profile=load_profile(profile))) == 0
    return optuna.load_study(study_name=spec.name, storage=url)


def config_of(spec: StudySpec, seqs: int) -> ServingConfig:
    params = {"engine": "vllm", "model_variant": "bf16", "vllm.max-num-seqs": seqs}
    config = resolve_candidate(candidate_from_params(spec, params), spec.node_group).config
    assert config is not None
    return config


def test_every_real_trial_is_predicted_before_it_runs_from_the_runs_before_it(
    tmp_path: Path, files: tuple[StudySpec, Path]
) -> None:
    spec, profile = files
    study = emulated(tmp_path, spec, profile, screening=True)
    rows = prediction_rows(study.trials)
    assert [r.number for r in rows] == [0, 1, 2, 3]
    assert [r.prediction.n_runs for r in rows] == [0, 1, 2, 3]
    # the shipped calibration is 40% too fast here; one measured run corrects it
    first, later = rows[0].throughput_error, [r.throughput_error for r in rows[1:]]
    assert first is not None and first > 0.3
    assert all(e is not None and e < first / 3 for e in later), (first, later)
    sampled = [t for t in study.trials if not ({BASELINE, ANCHOR} & set(t.user_attrs))]
    assert sampled and all(SCREENED in t.user_attrs for t in sampled)


def test_screening_off_still_stores_predictions_and_a_simulated_study_none(
    tmp_path: Path, files: tuple[StudySpec, Path]
) -> None:
    spec, profile = files
    study = emulated(tmp_path, spec, profile, screening=False, n_trials=2)
    assert all(read_prediction(t) is not None for t in study.trials)
    assert not any(SCREENED in t.user_attrs for t in study.trials)
    simulated = StudyConfig.of(spec, storage="sqlite://", quiet=True)
    assert study_shadow(simulated, study) is None


def test_the_refit_learns_the_profile_and_resumes_from_the_storage(
    tmp_path: Path, files: tuple[StudySpec, Path]
) -> None:
    spec, profile = files
    study = emulated(tmp_path, spec, profile, screening=True)
    truth = SimRunner(profile=load_profile(profile))
    shipped, learned = ShadowSimulator(spec), ShadowSimulator(spec)
    assert learned.refresh(study.get_trials()) and learned.n_runs == 4
    assert not learned.refresh(study.get_trials())  # nothing new: no refit
    config = config_of(spec, 16)
    true = truth.simulate_config(config, learned.workload).metrics
    assert true is not None
    errors = {}
    for name, shadow in (("shipped", shipped), ("learned", learned)):
        predicted = shadow.foretell(config).throughput
        assert predicted is not None
        errors[name] = abs(predicted / true.output_throughput_tok_s - 1)
    assert errors["learned"] < 0.05 < errors["shipped"], errors


def test_a_configuration_already_run_is_predicted_by_its_measurement(
    tmp_path: Path, files: tuple[StudySpec, Path]
) -> None:
    spec, profile = files
    study = emulated(tmp_path, spec, profile, screening=False, n_trials=1)
    shadow = ShadowSimulator(spec)
    shadow.refresh(study.get_trials())
    baseline = config_of(spec, 64)
    prediction = shadow.predict(baseline, shadow.workload)
    assert prediction.log_sigma == 0.0 and prediction.metrics is not None
    measured = study.trials[0].values
    assert prediction.metrics.output_throughput_tok_s == pytest.approx(measured[0])
    # what is stored before a trial stays the simulator's own guess, with its spread
    assert shadow.foretell(baseline).log_sigma > 0.0


def test_stored_metrics_read_back_exactly(tmp_path: Path, files: tuple[StudySpec, Path]) -> None:
    spec, _ = files
    outcome = SimRunner().simulate_config(config_of(spec, 8), ShadowSimulator(spec).workload)
    assert outcome.metrics is not None
    assert metrics_from_flat(outcome.metrics.flat()) == outcome.metrics


@pytest.mark.slow
def test_a_real_emulator_study_reports_prediction_against_measurement(
    tmp_path: Path, files: tuple[StudySpec, Path]
) -> None:
    """Real processes over HTTP: the emulator with the profile, the report's section."""
    spec, profile = files
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = StudyConfig.of(
        spec,
        storage=url,
        n_trials=3,
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
    assert all(PREDICTION in t.user_attrs for t in study.trials)
    rows = prediction_rows(study.trials)
    assert [r.prediction.n_runs for r in rows] == [0, 1, 2]
    errors = [r.throughput_error for r in rows]
    assert errors[0] is not None and errors[0] > 0.2  # the shipped calibration is wrong here
    # refitted on the runs before them, the next predictions are much closer (over HTTP the
    # emulator adds its own timing on top of the profile, so not as close as in process)
    assert all(e is not None and e < errors[0] / 2 for e in errors[1:]), errors
    md = write_report(study, tmp_path / "report").markdown.read_text()
    assert "## Simulator against measurement" in md
    assert "| every real trial | 3 |" in md


def test_runs_the_fit_cannot_explain_are_set_aside_and_the_study_goes_on(
    tmp_path: Path,
    files: tuple[StudySpec, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec, profile = files

    def refuse(*args: object, **kwargs: object) -> None:
        raise CalibrationError("trial 0: the simulator cannot reproduce this working run")

    monkeypatch.setattr(shadow_module, "fit_calibration", refuse)
    study = emulated(tmp_path, spec, profile, screening=True, n_trials=2)
    assert len(study.trials) == 2 and all(t.values for t in study.trials)
    # nothing learned: both predicted by the shipped calibration, and said once per trial
    assert [r.prediction.n_runs for r in prediction_rows(study.trials)] == [0, 0]
    err = capsys.readouterr().err
    assert "did not learn from trial 0: trial 0: the simulator cannot reproduce" in err
    shadow = ShadowSimulator(spec)
    assert not shadow.refresh(study.get_trials())
    assert set(shadow.set_aside) == {0, 1} and shadow.fit is None


def test_the_users_calibration_predicts_until_the_study_has_runs_of_its_own(
    files: tuple[StudySpec, Path],
) -> None:
    spec, profile = files
    truth = SimRunner(profile=load_profile(profile))
    workload = ShadowSimulator(spec).workload
    measured = truth.simulate_config(config_of(spec, 64), workload).metrics
    prior = fit_calibration([Observation(config_of(spec, 64), workload, measured, "run 1")])
    true = truth.simulate_config(config_of(spec, 16), workload).metrics
    assert true is not None
    errors = {}
    for name, shadow in (
        ("shipped", ShadowSimulator(spec)),
        ("user", ShadowSimulator(spec, prior)),
    ):
        predicted = shadow.foretell(config_of(spec, 16)).throughput
        assert predicted is not None and shadow.n_runs == 0
        errors[name] = abs(predicted / true.output_throughput_tok_s - 1)
    # one run of the user's pins the factor this profile changes: much closer than shipped
    assert errors["user"] < 0.1 and errors["user"] < errors["shipped"] / 2, errors

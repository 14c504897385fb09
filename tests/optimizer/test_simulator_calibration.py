"""The space file's ``simulator: {calibration: FILE}``: a study on the simulator applies the
user's calibration, its report names the file and its fit error, and a missing, malformed or
poor calibration stops the study before anything is stored, naming the field."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import optuna
import pytest
import yaml

from optimizer import study
from optimizer.cli import make_runner
from optimizer.config import RunnerChoice, StudyConfig, with_calibration
from optimizer.errors import SpecError
from optimizer.predictors import study_predictor
from optimizer.provenance import provenance_of
from optimizer.spec.load import load_spec
from runners.sim import calibrate
from runners.sim.profile import EngineScales
from runners.sim.runner import SimRunner
from tests.optimizer.test_open_world_spec import space, write
from tests.runners.calib_runs import bench_rows
from tests.runners.calib_runs import config as runs_config
from tests.runners.calib_runs import workload as runs_workload

SLOW = EngineScales(compute_efficiency=0.6, memory_bandwidth_efficiency=0.7)


def calibration_file(folder: Path, scale: float = 1.0, name: str = "calibration.yaml") -> Path:
    """A calibration from runs of an engine slower than the simulator (`scale` multiplies the
    last run's throughput: 10 makes the fit poor)."""
    rows = bench_rows(SLOW, count=3)
    rows[-1]["total_token_throughput"] = str(float(rows[-1]["total_token_throughput"]) * scale)
    runs = folder / f"{name}.runs.csv"
    with runs.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = folder / name
    assert calibrate.main(["--runs", str(runs), "--out", str(out)]) == 0
    return out


def calibrated_space(folder: Path, simulator: dict[str, object] | None, name: str) -> Path:
    model = {"name": "Qwen3-8B", "variants": {"bf16": "Qwen/Qwen3-8B"}}
    extra: dict[str, object] = {"name": name}
    if simulator is not None:
        extra["simulator"] = simulator
    return write(folder, space(model, "H100-SXM-80GB", 1, **extra), f"{name}.yaml")


def run_study(root: Path, space_file: Path) -> tuple[int, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        out = root / f"{space_file.stem}.stdout"
        with out.open("w") as sink, contextlib.redirect_stdout(sink):
            code = study.main(["--space", str(space_file), "--n-trials", "2"])
    return code, out.read_text()


def best_throughput(root: Path, name: str) -> float:
    loaded = optuna.load_study(study_name=name, storage=f"sqlite:///{root}/studies/{name}.db")
    return max(t.values[0] for t in loaded.trials if t.values)


def test_a_study_applies_the_calibration_and_its_report_names_it(tmp_path: Path) -> None:
    (tmp_path / "calib").mkdir()
    calibration_file(tmp_path / "calib")
    # a relative path is taken from the space file's folder, not the working directory
    calibrated = calibrated_space(tmp_path, {"calibration": "calib/calibration.yaml"}, "mine")
    plain = calibrated_space(tmp_path, None, "plain")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_study(elsewhere, calibrated)[0] == 0
    assert run_study(elsewhere, plain)[0] == 0
    # the same trials, simulated as the slower engine the runs came from
    assert best_throughput(elsewhere, "mine") < 0.85 * best_throughput(elsewhere, "plain")
    report = (elsewhere / "studies" / "mine" / "report.md").read_text()
    assert f"calibration {tmp_path / 'calib' / 'calibration.yaml'}" in report
    assert "3 runs, a good fit; median error throughput" in report
    plain_report = (elsewhere / "studies" / "plain" / "report.md").read_text()
    assert "user's calibration" not in plain_report


def test_validate_and_every_runner_choice_get_the_calibration(tmp_path: Path) -> None:
    calibration_file(tmp_path)
    spec = load_spec(calibrated_space(tmp_path, {"calibration": "calibration.yaml"}, "v"))
    choice = with_calibration(RunnerChoice("sim", noise=True), spec)
    assert choice.calibration is not None and choice.calibration.n_runs == 3
    runner = make_runner(choice, tmp_path / "trials")
    assert isinstance(runner, SimRunner) and runner.calibration is choice.calibration
    assert StudyConfig.of(spec).runner.calibration == choice.calibration


@pytest.mark.parametrize(
    ("simulator", "says"),
    [
        ({"calibration": "missing.yaml"}, "missing.yaml: the calibration cannot be read"),
        ({"calibration": "bad.yaml"}, "bad.yaml: not a calibration file"),
        ({"calibration": "poor.yaml"}, "quality: poor"),
        ({"calibraton": "poor.yaml"}, "simulator.calibraton: unknown field"),
    ],
)
def test_a_calibration_that_cannot_be_used_stops_the_study(
    tmp_path: Path, simulator: dict[str, object], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    calibration_file(tmp_path, scale=10.0, name="poor.yaml")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(["not", "a", "mapping"]))
    space_file = calibrated_space(tmp_path, simulator, "broken")
    with pytest.raises(SpecError, match=r"simulator\.calibrat") as caught:
        load_spec(space_file)
    assert says in str(caught.value) and str(caught.value).startswith(str(space_file))
    capsys.readouterr()
    code, _ = run_study(tmp_path, space_file)
    err = capsys.readouterr().err.strip()
    assert code == 2 and says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "studies" / "broken.db").exists()


def test_a_poor_calibration_is_used_when_accepted_and_the_report_says_so(tmp_path: Path) -> None:
    calibration_file(tmp_path, scale=10.0, name="poor.yaml")
    space_file = calibrated_space(
        tmp_path, {"calibration": "poor.yaml", "accept_poor_fit": True}, "accepted"
    )
    spec = load_spec(space_file)
    choice = with_calibration(RunnerChoice(), spec)
    assert choice.calibration is not None and choice.calibration.poor
    assert "a poor fit, accepted explicitly" in provenance_of(choice, spec).sentence


def test_screening_predicts_with_the_calibration_the_trials_run_with(tmp_path: Path) -> None:
    calibration_file(tmp_path)
    spec = load_spec(calibrated_space(tmp_path, {"calibration": "calibration.yaml"}, "s"))
    plain_spec = load_spec(calibrated_space(tmp_path, None, "p"))
    calibrated, plain = (
        study_predictor(StudyConfig.of(spec, screening=True)),
        study_predictor(StudyConfig.of(plain_spec, screening=True)),
    )
    assert calibrated is not None and plain is not None
    cfg, load = runs_config(), runs_workload()
    slow, shipped = calibrated.predict(cfg, load).metrics, plain.predict(cfg, load).metrics
    assert slow is not None and shipped is not None
    assert slow.total_token_throughput_tok_s < 0.85 * shipped.total_token_throughput_tok_s

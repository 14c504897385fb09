"""``--runner emulator --emulator-profile FILE``: any space file studied against a truth profile.

The profile is checked before anything is stored (a bad one: exit 2, one line naming the file
and the field, no study); a good one reaches the emulated engine, which the study records as
runner ``emulator``.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from optimizer.cli import make_runner, parse_args
from optimizer.errors import UsageError
from runners.local import LocalRunner
from tests.test_study_cli import run_cli


def test_a_bad_profile_stops_the_study_before_anything_is_stored(tmp_path: Path) -> None:
    bad = tmp_path / "truth.yaml"
    bad.write_text("engines: {vllm: {step_overhead: -2}}\n")
    result = run_cli(
        tmp_path, "--space", "qwen3-moe.yaml", "--runner", "emulator", "--emulator-profile",
        str(bad),
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(bad) in result.stderr and "engines.vllm.step_overhead" in result.stderr
    assert not (tmp_path / "studies").exists(), "nothing is written for a bad profile"


def test_emulator_options_need_the_emulator_runner() -> None:
    with pytest.raises(UsageError, match="need --runner emulator"):
        parse_args(["--space", "qwen3-moe.yaml", "--emulator-profile", "x.yaml"])
    with pytest.raises(UsageError, match="above 0"):
        parse_args(["--space", "qwen3-moe.yaml", "--runner", "emulator", "--emulator-time-scale",
                    "0"])  # fmt: skip


def test_the_emulator_runner_is_the_local_runner_with_the_profile(tmp_path: Path) -> None:
    profile = tmp_path / "truth.yaml"
    profile.write_text("engines: {sglang: {compute_efficiency: 0.8}}\n")
    config = parse_args(
        ["--space", "qwen3-moe.yaml", "--runner", "emulator", "--emulator-profile", str(profile)]
    )
    assert config.runner.name == "emulator"
    runner = make_runner(config.runner, tmp_path / "trials")
    assert isinstance(runner, LocalRunner) and runner.emulator is not None
    assert runner.emulator.profile == profile
    assert runner.emulator.time_scale == 5.0


@pytest.mark.slow
def test_a_study_runs_against_the_emulator(tmp_path: Path) -> None:
    profile = tmp_path / "truth.yaml"
    profile.write_text("engines: {vllm: {compute_efficiency: 0.7}}\nnoise: {run: 0.01}\n")
    space = Path(__file__).resolve().parents[1] / "data" / "spaces" / "emulated-small.yaml"
    result = run_cli(
        tmp_path, "--space", str(space), "--runner", "emulator", "--emulator-profile",
        str(profile), "--n-trials", "2", "--no-anchors",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    db = tmp_path / "studies" / "emulated-small.db"
    study = optuna.load_study(study_name="emulated-small", storage=f"sqlite:///{db}")
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert completed, [t.user_attrs.get("crash_message") for t in study.trials]
    assert all(t.user_attrs["runner"]["name"] == "emulator" for t in completed)

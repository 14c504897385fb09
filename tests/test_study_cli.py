"""End to end: `python -m optimizer.study` as a user runs it, on the embedded simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parent.parent


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "optimizer.study", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def ran(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that reached the runner: COMPLETE, or PRUNED by a crash (not by pre-flight)."""
    return sum(
        t.state == TrialState.COMPLETE
        or (
            t.state == TrialState.PRUNED
            and not str(t.user_attrs["crash_class"]).startswith("rejected:")
        )
        for t in trials
    )


@pytest.mark.slow
def test_main_job_runs_and_resumes(tmp_path: Path) -> None:
    first = run_cli(tmp_path, "--space", "qwen3-moe.yaml", "--n-trials", "30")
    assert first.returncode == 0, first.stderr
    db = tmp_path / "studies" / "qwen3-moe.db"
    assert db.exists(), "the default storage is studies/<name>.db under the working directory"
    lines = [line for line in first.stdout.splitlines() if "] trial " in line]
    ran_lines = [line for line in lines if "pre-flight" not in line]
    assert len(ran_lines) == 30, "one progress line per trial that ran"
    assert "Pareto front:" in first.stdout
    assert "vllm serve Qwen/Qwen3-235B-A22B-Instruct-2507 --tensor-parallel-size 8" in first.stdout

    study = optuna.load_study(study_name="qwen3-moe", storage=f"sqlite:///{db}")
    trials = study.trials
    assert len(trials) == len(lines), "every trial, ran or rejected, is in the study"
    assert ran(trials) == 30
    baseline = trials[0]
    assert baseline.user_attrs.get("baseline") is True
    assert baseline.state == TrialState.COMPLETE, baseline.user_attrs.get("crash_message")
    assert study.best_trials, "the Pareto front is not empty"
    for trial in study.best_trials:
        assert trial.user_attrs["serve_command"].split()[0] in ("vllm", "python", "trtllm-serve")
    for trial in trials:
        if trial.state == TrialState.PRUNED:
            assert trial.user_attrs["crash_class"]
            assert trial.user_attrs["crash_message"]
        if str(trial.user_attrs.get("crash_class", "")).startswith("rejected:"):
            assert "trial_seconds" not in trial.user_attrs.get("runner", {}), "no runner time"

    second = run_cli(tmp_path, "--space", "qwen3-moe.yaml", "--n-trials", "36")
    assert second.returncode == 0, second.stderr
    assert "30 trials finished, running 6 more" in second.stdout
    resumed = optuna.load_study(study_name="qwen3-moe", storage=f"sqlite:///{db}")
    assert ran(resumed.trials) == 36
    assert [t.params for t in resumed.trials[: len(trials)]] == [t.params for t in trials]
    assert sum(bool(t.user_attrs.get("baseline")) for t in resumed.trials) == 1


def test_malformed_space_exits_2_without_traceback_or_study(tmp_path: Path) -> None:
    space = tmp_path / "bad.yaml"
    shipped = (ROOT / "search_spaces" / "qwen3-moe.yaml").read_text()
    space.write_text(shipped.replace("max-num-seqs:", "max-num-seq:", 1))
    result = run_cli(tmp_path, "--space", str(space), "--n-trials", "3")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "engines.vllm.settings.max-num-seq" in result.stderr
    assert "did you mean 'max-num-seqs'" in result.stderr
    assert not (tmp_path / "studies").exists(), "nothing is written for a bad space file"


def test_bad_storage_url_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--space", "qwen3-moe.yaml", "--storage", "studies/x.db")
    assert result.returncode == 2
    assert "is not a database URL" in result.stderr
    assert "Traceback" not in result.stderr

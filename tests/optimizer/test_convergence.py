"""The convergence stop of simulated studies without --n-trials: plateau rule and time budget."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, create_trial

from optimizer import cli
from optimizer.config import StudyConfig
from optimizer.convergence import (
    Stopper,
    StopRule,
    goodput_plateau,
    plateau,
    runner_trials,
    window_of,
)
from optimizer.loop import STOP_REASON, run_study
from optimizer.spec.models import StudySpec
from runners.sim.runner import SimRunner


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def trials(values: list[tuple[float, float]]) -> list[FrozenTrial]:
    made = []
    for number, (tput, lat) in enumerate(values):
        trial = create_trial(
            values=[tput, lat], params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}
        )
        trial.number = number
        made.append(trial)
    return made


RULE = StopRule(min_evaluations=10, window_evaluations=5, rel_gain=0.01)


def test_a_front_that_stopped_moving_has_converged() -> None:
    rising = [(100.0 * (i + 1), 10.0) for i in range(10)]
    flat = [(50.0, 10.0)] * 5  # dominated: the front does not move
    converged, gain = plateau(trials(rising + flat), RULE)
    assert converged and gain == 0.0


def test_the_window_is_counted_in_evaluations() -> None:
    rule = StopRule(min_evaluations=150, window_evaluations=100)
    assert window_of(rule, 1) == (100, 150), "plain: every trial is one evaluation"
    assert window_of(rule, 8) == (13, 19), "screened by 8: 13 stored trials are 104 evaluations"
    assert window_of(rule, 64) == (5, 10), "never fewer than 5 trials, nor 10 in all"


def test_a_front_still_moving_or_too_young_has_not() -> None:
    rising = [(100.0 * (i + 1), 10.0) for i in range(15)]
    assert not plateau(trials(rising), RULE)[0], "the last window still raised it by a lot"
    assert not plateau(trials([(100.0, 10.0)] * 9), RULE)[0], "fewer than min_trials"
    small_gain = rising[:10] + [(50.0, 10.0)] * 4 + [(1001.0, 10.0)]
    assert plateau(trials(small_gain), RULE)[0], "a 0.1% gain is below 1%"


GOODPUT_RULE = StopRule(min_evaluations=10, goodput_window_evaluations=5, rel_gain=0.01)


def test_a_goodput_study_is_judged_on_its_best_goodput() -> None:
    rising = [(10.0 * (i + 1), 500.0) for i in range(10)]
    # the best goodput (100) stays; the low-latency end of the front keeps moving
    faster = [(5.0, 90.0 - 10.0 * i) for i in range(5)]
    assert not plateau(trials(rising + faster), GOODPUT_RULE)[0], "the area still grows"
    converged, gain = goodput_plateau(trials(rising + faster), GOODPUT_RULE)
    assert converged and gain == 0.0
    stopper = Stopper(GOODPUT_RULE, goodput=True)
    assert "raised the best goodput by 0.00%" in (stopper.reason(trials(rising + faster)) or "")


def test_a_goodput_study_still_rising_or_too_young_has_not_converged() -> None:
    rising = [(10.0 * (i + 1), 500.0) for i in range(15)]
    assert not goodput_plateau(trials(rising), GOODPUT_RULE)[0], "the best goodput still rises"
    assert not goodput_plateau(trials([(10.0, 500.0)] * 9), GOODPUT_RULE)[0], "too young"
    infeasible = [(0.0, 500.0)] * 20  # no load held: goodput 0
    assert not goodput_plateau(trials(infeasible), GOODPUT_RULE)[0], "nothing held yet"
    small_gain = rising[:10] + [(50.0, 10.0)] * 4 + [(100.5, 500.0)]
    assert goodput_plateau(trials(small_gain), GOODPUT_RULE)[0], "a 0.5% gain is below 1%"


def test_a_goodput_window_is_shorter() -> None:
    rule = StopRule()
    assert window_of(rule, 8, goodput=True) == (5, 19), "40 evaluations, the same minimum"
    assert window_of(rule, 1, goodput=True) == (40, 150)


def test_study_stops_on_convergence_and_says_so(
    spec: StudySpec, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = InMemoryStorage()
    rule = StopRule(min_evaluations=1, window_evaluations=1, rel_gain=1.0)  # at once
    config = StudyConfig.of(
        spec, storage="memory", study_name="c", quiet=True, stop=rule, anchors=False
    )
    assert config.n_trials == rule.max_trials
    assert run_study(config, SimRunner(), storage=storage) == 0
    study = optuna.load_study(study_name="c", storage=storage)
    assert len(runner_trials(study.trials)) == 10, "the least a study runs; rejections aside"
    assert "front converged" in study.user_attrs[STOP_REASON]
    assert "stopped: the front converged" in capsys.readouterr().out


def test_study_stops_at_its_time_budget_and_says_so(
    spec: StudySpec, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = InMemoryStorage()
    rule = StopRule(time_budget_s=0.0)
    config = StudyConfig.of(spec, storage="memory", study_name="t", quiet=True, stop=rule)
    assert run_study(config, SimRunner(), storage=storage) == 0
    study = optuna.load_study(study_name="t", storage=storage)
    assert "time budget of 0 s" in study.user_attrs[STOP_REASON]
    assert "stopped: time budget" in capsys.readouterr().out


def test_command_line_stop_rule() -> None:
    default = cli.parse_args(["--space", "qwen3-moe.yaml"])
    assert default.stop is not None and default.stop.time_budget_s == 60.0
    assert default.screening and default.candidates_per_trial == 8, "simulated: 8"
    real = cli.parse_args(["--space", "qwen3-moe.yaml", "--runner", "local"])
    assert real.candidates_per_trial == 32
    many = cli.parse_args(["--space", "qwen3-moe.yaml", "--screening-candidates", "16"])
    assert many.candidates_per_trial == 16
    budget = cli.parse_args(["--space", "qwen3-moe.yaml", "--time-budget", "5"])
    assert budget.stop is not None and budget.stop.time_budget_s == 5.0
    fixed = cli.parse_args(["--space", "qwen3-moe.yaml", "--n-trials", "7", "--screening=off"])
    assert fixed.stop is None and fixed.n_trials == 7 and not fixed.screening
    real = cli.parse_args(["--space", "qwen3-moe.yaml", "--runner", "local"])
    assert real.stop is None and real.n_trials == 50, "real runners keep the file's n_trials"


def test_time_budget_with_n_trials_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--space", "qwen3-moe.yaml", "--n-trials", "3", "--time-budget", "9"])
    err = capsys.readouterr().err
    assert code == 2 and "--time-budget" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "studies").exists(), "nothing written"

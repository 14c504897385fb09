"""A real engine that fails to start 3 times in a row for the same reason stops the study.

The reason is the crash class and the root-cause message, with what varies between trials
(ports, sizes, trial folders) left out. A trial that starts resets the count; the simulator's
crashes never stop a study (they are the configurations', not the machine's).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
from optuna.trial import TrialState

from optimizer.config import RunnerChoice, RunnerName, StudyConfig
from optimizer.loop import EXIT_ENGINE_WONT_START, StartFailures, run_study
from optimizer.spec.models import StudySpec
from runners.types import Candidate, Crash, CrashClass, Placement, TrialOutcome, Workload
from tests.optimizer.test_driver import config, load, metrics

NO_MODULE = "ModuleNotFoundError: No module named 'vllm_flash_attn' (port {port}, dir {tag})"


class ScriptRunner:
    """Returns the scripted outcomes in order; each start failure names a fresh port and
    trial folder, as real ones do."""

    def __init__(self, script: list[str]) -> None:
        self.script = itertools.cycle(script)
        self.calls = 0

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        self.calls += 1
        step = next(self.script)
        message = NO_MODULE.format(port=20000 + 7 * self.calls, tag=f"a{self.calls:07x}f")
        if step == "no_module":
            return TrialOutcome("crashed", crash=Crash(CrashClass.ENGINE_EXITED, message))
        if step == "timeout":
            text = f"http://127.0.0.1:{21000 + self.calls}/health did not answer 200 within 600 s"
            return TrialOutcome("crashed", crash=Crash(CrashClass.START_TIMEOUT, text))
        if step == "load":
            crash = Crash(CrashClass.RUNTIME_OOM, "CUDA out of memory", "load")
            return TrialOutcome("crashed", crash=crash)
        return TrialOutcome("ok", metrics=metrics(1000.0 + self.calls, 10.0))


def real(
    spec: StudySpec, tmp_path: Path, n_trials: int, runner: RunnerName = "local"
) -> StudyConfig:
    return dataclasses.replace(config(spec, tmp_path, n_trials), runner=RunnerChoice(runner))


def test_three_start_failures_for_one_reason_stop_the_study(
    tmp_path: Path, spec: StudySpec, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = ScriptRunner(["no_module"])
    status = run_study(real(spec, tmp_path, 10), runner)
    assert status == EXIT_ENGINE_WONT_START
    assert runner.calls == 3
    trials = load(tmp_path).trials
    assert [t.state for t in trials if t.state != TrialState.WAITING] == [TrialState.PRUNED] * 3
    err = capsys.readouterr().err
    assert "failed to start 3 times in a row for the same reason, start:exited" in err
    assert "No module named 'vllm_flash_attn'" in err


def test_a_trial_that_starts_resets_the_count(tmp_path: Path, spec: StudySpec) -> None:
    runner = ScriptRunner(["no_module", "no_module", "ok"])
    assert run_study(real(spec, tmp_path, 8), runner) == 0
    assert runner.calls == 8


def test_different_reasons_and_crashes_under_load_do_not_add_up(
    tmp_path: Path, spec: StudySpec
) -> None:
    runner = ScriptRunner(["no_module", "no_module", "timeout", "timeout", "load"])
    assert run_study(real(spec, tmp_path, 10), runner) == 0
    assert runner.calls == 10


def test_simulated_crashes_never_stop_a_study(tmp_path: Path, spec: StudySpec) -> None:
    runner = ScriptRunner(["no_module"])
    assert run_study(real(spec, tmp_path, 5, runner="sim"), runner) == 0
    assert runner.calls == 5


def test_the_count_stays_at_the_limit_while_trials_in_flight_finish() -> None:
    failures = StartFailures()
    crash = Crash(CrashClass.START_TIMEOUT, "http://127.0.0.1:20001/health did not answer")
    for port in (20001, 20002, 20003):
        failing = Crash(crash.crash_class, crash.message.replace("20001", str(port)))
        failures.add(TrialOutcome("crashed", crash=failing))
    assert failures.count == 3
    failures.add(TrialOutcome("ok", metrics=metrics(1.0, 1.0)))
    assert failures.count == 3

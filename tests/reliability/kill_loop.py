"""The kill loop: interrupt a driver at seeded random points, rerun, and check nothing was lost.

Shared by `tests/reliability/test_kill_loop.py` (a reduced count in the default suite) and
`scripts/reliability_kill_loop.py` (the full count). It reuses the durability tests' helpers:
the slowed driver (a real process running `run_study` with a runner that sleeps before each
trial, so trials are in flight when the signal lands) and the real CLI for the final rerun.

A kill point is random: after the driver has finished between 0 and 2 more trials than before
it started (so every cycle makes progress), plus a random delay of up to one trial's length;
the signal may land while a trial runs, between trials, or while a tell is being written. The
signal is random too: SIGKILL (the driver gets no say: its trials stay RUNNING until the next
driver finds them stale), SIGTERM or SIGINT (the driver fails its trials in flight and queues
them again itself).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from tests.optimizer.test_durability import ran, run_cli, start_slow_driver

TRIAL_SECONDS = 0.5
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)


@dataclass
class KillLoopResult:
    """What happened, and the figures the README reports."""

    storage: str
    requested: int
    kills: int = 0
    by_signal: dict[str, int] = field(default_factory=dict)
    interrupted: set[int] = field(default_factory=set)  # trials RUNNING when a kill landed
    completed_seen: dict[int, tuple[float, ...]] = field(default_factory=dict)
    final: list[FrozenTrial] = field(default_factory=list)

    def finished(self) -> list[FrozenTrial]:
        return ran(self.final)

    def lost(self) -> list[int]:
        """COMPLETE trials seen after some kill that are gone or changed at the end."""
        by_number = {t.number: t for t in self.final}
        return [
            number
            for number, values in self.completed_seen.items()
            if number not in by_number
            or by_number[number].state != TrialState.COMPLETE
            or tuple(by_number[number].values) != values
        ]

    def retried_from(self) -> list[int]:
        """For each retry, the trial it retries (the last of its `retry_history`; the system
        attribute `failed_trial` names the first trial of a chain of retries)."""
        return [
            t.system_attrs["retry_history"][-1]
            for t in self.final
            if t.system_attrs.get("retry_history")
        ]

    def duplicates(self) -> int:
        """Trial numbers seen twice, plus failed trials retried more than once."""
        numbers = [t.number for t in self.final]
        retried = self.retried_from()
        return (len(numbers) - len(set(numbers))) + (len(retried) - len(set(retried)))

    def not_retried(self) -> list[int]:
        """Interrupted trials that did not end FAIL with a retry."""
        retries = set(self.retried_from())
        by_number = {t.number: t for t in self.final}
        return [
            number
            for number in sorted(self.interrupted)
            if by_number[number].state != TrialState.FAIL or number not in retries
        ]

    def summary(self) -> str:
        states = {
            state.name: sum(t.state == state for t in self.final)
            for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        }
        signals = ", ".join(f"{name} {count}" for name, count in sorted(self.by_signal.items()))
        return (
            f"interruptions survived {self.kills} ({signals}); finished "
            f"{len(self.finished())}/{self.requested}; "
            f"interrupted trials {len(self.interrupted)} (failed and retried: "
            f"{len(self.interrupted) - len(self.not_retried())}); COMPLETE trials tracked "
            f"{len(self.completed_seen)}, lost {len(self.lost())}; duplicates "
            f"{self.duplicates()}; states {states}"
        )


def _trials(storage: str, name: str) -> list[FrozenTrial] | None:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except Exception:  # not created yet, or its schema is being created right now
        return None


def _kill(process: subprocess.Popen[str], sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal the process group we started (the driver runs in its own session); a driver
    that handles the signal must exit by itself within the wait."""
    os.killpg(process.pid, sig)
    process.wait(timeout=60)


def _running(trials: list[FrozenTrial]) -> set[int]:
    return {t.number for t in trials if t.state == TrialState.RUNNING}


def kill_once(
    tmp_path: Path, storage: str, name: str, n_trials: int, rng: random.Random
) -> tuple[signal.Signals, set[int]] | None:
    """Start a slowed driver, interrupt it at a random point with a random signal; the signal
    and the trials it interrupted (left RUNNING, or RUNNING before and FAIL after).

    None when the driver finished the study before the kill point came.
    """
    before = _trials(storage, name) or []
    target = len(ran(before)) + rng.randint(0, 2) + (0 if before else 1)
    delay = rng.uniform(0.0, TRIAL_SECONDS)
    sig = rng.choice(SIGNALS)
    running_before: set[int] = set()
    driver = start_slow_driver(tmp_path, TRIAL_SECONDS, storage, name, n_trials)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            trials = _trials(storage, name)
            if trials is not None and len(ran(trials)) >= target:
                break
            if driver.poll() is not None:
                assert driver.returncode == 0, driver.stderr.read() if driver.stderr else ""
                return None
            time.sleep(0.05)
        else:
            raise AssertionError("the driver made no progress")
        time.sleep(delay)
        if driver.poll() is not None:
            return None
        running_before = _running(_trials(storage, name) or [])
        _kill(driver, sig)
    finally:
        if driver.poll() is None:
            _kill(driver)
    after = _trials(storage, name) or []
    failed = {t.number for t in after if t.state == TrialState.FAIL}
    return sig, _running(after) | (running_before & failed)


def kill_loop(
    tmp_path: Path, storage: str, name: str, n_trials: int, kills: int, seed: int
) -> KillLoopResult:
    rng = random.Random(seed)
    result = KillLoopResult(storage, n_trials)
    while result.kills < kills:
        outcome = kill_once(tmp_path, storage, name, n_trials, rng)
        if outcome is None:
            break  # the study finished first: more trials would be needed for more kills
        sig, interrupted = outcome
        result.kills += 1
        result.by_signal[sig.name] = result.by_signal.get(sig.name, 0) + 1
        result.interrupted |= interrupted
        for trial in _trials(storage, name) or []:
            if trial.state == TrialState.COMPLETE:
                result.completed_seen[trial.number] = tuple(trial.values)
    rerun = run_cli(tmp_path, storage, name, n_trials)
    assert rerun.returncode == 0, rerun.stderr
    result.final = optuna.load_study(study_name=name, storage=storage).trials
    return result


def check(result: KillLoopResult, kills: int) -> None:
    assert result.kills == kills, result.summary()
    assert len(result.finished()) == result.requested, result.summary()
    assert result.lost() == [], result.summary()
    assert result.duplicates() == 0, result.summary()
    assert result.not_retried() == [], result.summary()
    left = [t.number for t in result.final if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert left == [], result.summary()

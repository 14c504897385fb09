"""The driver interrupted (SIGKILL, SIGTERM or SIGINT) at seeded random points, rerun each time:
nothing lost, nothing twice.

The default suite interrupts 3 times per storage; `scripts/reliability_kill_loop.py` runs the full
10 kills per storage. Heartbeats every 1 s with a 3 s grace period, so a killed trial is failed
and retried within seconds.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.optimizer.test_durability import BEAT, SLOW_DRIVER, env, ran
from tests.reliability.kill_loop import check, kill_loop

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

KILLS = 3


def test_kill_loop_on_sqlite(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'loop.db'}"
    result = kill_loop(tmp_path, storage, "loop", n_trials=8, kills=KILLS, seed=1)
    print(result.summary())
    check(result, KILLS)


@pytest.mark.postgres
def test_kill_loop_on_postgresql(tmp_path: Path, postgres_server: str) -> None:
    result = kill_loop(tmp_path, postgres_server, "loop", n_trials=8, kills=KILLS, seed=2)
    print(result.summary())
    check(result, KILLS)


def start_talking_driver(
    tmp_path: Path, storage: str, name: str, n_trials: int
) -> subprocess.Popen[str]:
    """The durability tests' slowed driver, printing its per-trial lines (no --quiet)."""
    script = tmp_path / "slow_driver.py"
    script.write_text(SLOW_DRIVER)
    argv = [sys.executable, str(script), "0.1", "--space", "qwen3-moe.yaml"]
    argv += ["--n-trials", str(n_trials), "--storage", storage, "--study-name", name, *BEAT]
    return subprocess.Popen(
        argv, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


LINE = re.compile(r"^\[\s*\d+/\d+\] trial\s+(\d+)\s", re.MULTILINE)


@pytest.mark.postgres
def test_four_drivers_on_one_postgresql_study(tmp_path: Path, postgres_server: str) -> None:
    total = 12
    drivers = [
        start_talking_driver(tmp_path, postgres_server, "four", n_trials=total) for _ in range(4)
    ]
    told: list[int] = []
    for driver in drivers:
        out, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err
        told += [int(number) for number in LINE.findall(out)]
    trials = optuna.load_study(study_name="four", storage=postgres_server).trials
    finished = ran(trials)
    assert len(finished) == total, "together they stop at exactly --n-trials"
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # every tell a driver reported is in the storage, and no trial was told by two drivers
    assert len(told) == len(set(told))
    done = {t.number for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert set(told) == done
    for trial in finished:
        if trial.state == TrialState.COMPLETE:
            assert trial.values is not None and len(trial.values) == 2
        else:
            assert trial.user_attrs["crash_class"]


def test_a_trial_killed_before_its_first_heartbeat_is_failed_and_retried(tmp_path: Path) -> None:
    """Killed between asking for a trial and its first heartbeat: the trial is RUNNING with no
    heartbeat at all, which Optuna never finds stale; the next driver must still fail and retry
    it after the grace period instead of waiting for it forever (found by the kill loop)."""
    from optimizer.storage import open_storage

    storage = f"sqlite:///{tmp_path / 'orphan.db'}"
    argv = [sys.executable, "-m", "optimizer.study", "--space", "qwen3-moe.yaml", "--quiet"]
    argv += ["--storage", storage, "--study-name", "orphan", *BEAT]
    first = subprocess.run([*argv, "--n-trials", "2"], cwd=tmp_path, env=env(), timeout=300)
    assert first.returncode == 0
    study = optuna.load_study(study_name="orphan", storage=open_storage(storage, 1, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # heartbeats outside Study.optimize
        orphan = study.ask().number  # RUNNING, never beats
    time.sleep(4)  # let the grace period (3 s) pass
    rerun = subprocess.run(
        [*argv, "--n-trials", "3"], cwd=tmp_path, env=env(), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    trials = optuna.load_study(study_name="orphan", storage=storage).trials
    assert trials[orphan].state == TrialState.FAIL
    assert [t.system_attrs.get("failed_trial") for t in trials].count(orphan) == 1
    assert len(ran(trials)) == 3

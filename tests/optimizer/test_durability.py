"""Nothing lost, nothing duplicated: kill -9 of a driver mid-trial, and drivers side by side.

The drivers are real processes. The one that gets killed runs a slowed-down simulator (so a
trial is reliably in flight when SIGKILL arrives) through the same `run_study` the CLI uses;
the rerun is the real CLI. Heartbeats are shortened so stale trials are failed and retried in
seconds instead of minutes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from tests.pg_cluster import find_bin_dir, pg_cluster

ROOT = Path(__file__).resolve().parents[2]
BEAT = ["--heartbeat-interval", "1", "--grace-period", "3"]

SLOW_DRIVER = """
import sys, time
from optimizer.cli import parse_args
from optimizer.loop import run_study
from runners.sim.runner import SimRunner

class SlowRunner:
    def __init__(self, seconds):
        self.inner, self.seconds = SimRunner(), seconds
    def run(self, candidate, workload, placement):
        time.sleep(self.seconds)
        return self.inner.run(candidate, workload, placement)

sys.exit(run_study(parse_args(sys.argv[2:]), SlowRunner(float(sys.argv[1]))))
"""


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if find_bin_dir() is None and "SERVING_OPTIMIZER_TEST_PG_URL" not in os.environ:
        pytest.skip("no PostgreSQL binaries on this machine")
    with pg_cluster() as url:
        yield url


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def start_slow_driver(
    tmp_path: Path, seconds: float, storage: str, name: str, n_trials: int
) -> subprocess.Popen[str]:
    script = tmp_path / "slow_driver.py"
    script.write_text(SLOW_DRIVER)
    argv = [sys.executable, str(script), str(seconds), "--space", "qwen3-moe.yaml"]
    argv += ["--n-trials", str(n_trials), "--storage", storage, "--study-name", name, "--quiet"]
    return subprocess.Popen(
        [*argv, *BEAT],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_cli(
    tmp_path: Path, storage: str, name: str, n_trials: int
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "optimizer.study", "--space", "qwen3-moe.yaml"]
    argv += ["--n-trials", str(n_trials), "--storage", storage, "--study-name", name, "--quiet"]
    return subprocess.run(
        [*argv, *BEAT], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600
    )


def ran(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        or (
            t.state == TrialState.PRUNED
            and not t.user_attrs["crash_class"].startswith("rejected:")
        )
    ]


def kill_during_a_trial(process: subprocess.Popen[str], storage: str, name: str) -> int:
    """SIGKILL the driver's process group while it has a trial RUNNING; return that trial."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except Exception:  # not created yet, or its schema is being created right now
            time.sleep(0.2)
            continue
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if len(ran(trials)) >= 3 and running:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return running[0].number
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("the driver never had a trial in flight")


def check_resumed(storage: str, name: str, total: int, killed: int) -> None:
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert len(ran(trials)) == total, "exactly the requested number of trials ran"
    assert trials[killed].state == TrialState.FAIL, "the killed trial was failed, not left RUNNING"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1, "the killed trial was retried exactly once"
    # the retry keeps every parameter the killed trial had chosen (it may have been killed
    # half-way through suggesting, in which case the retry suggests the rest)
    assert trials[killed].params.items() <= retries[0].params.items()
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in ran(trials)]
    assert len(numbers) == len(set(numbers))


@pytest.mark.slow
def test_kill_9_then_rerun_on_sqlite(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'k.db'}"
    driver = start_slow_driver(tmp_path, 1.0, storage, "k", n_trials=8)
    killed = kill_during_a_trial(driver, storage, "k")
    rerun = run_cli(tmp_path, storage, "k", n_trials=8)
    assert rerun.returncode == 0, rerun.stderr
    check_resumed(storage, "k", 8, killed)


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_9_then_rerun_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    driver = start_slow_driver(tmp_path, 1.0, postgres_url, "k9", n_trials=8)
    killed = kill_during_a_trial(driver, postgres_url, "k9")
    rerun = run_cli(tmp_path, postgres_url, "k9", n_trials=8)
    assert rerun.returncode == 0, rerun.stderr
    check_resumed(postgres_url, "k9", 8, killed)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_drivers_share_one_study_exactly(tmp_path: Path, postgres_url: str) -> None:
    first = start_slow_driver(tmp_path, 0.3, postgres_url, "pair", n_trials=14)
    second = start_slow_driver(tmp_path, 0.3, postgres_url, "pair", n_trials=14)
    for driver in (first, second):
        _, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err
    trials = optuna.load_study(study_name="pair", storage=postgres_url).trials
    assert len(ran(trials)) == 14
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_sqlite_studies_use_write_ahead_logging_and_commits_are_visible_at_once(
    tmp_path: Path,
) -> None:
    import sqlite3

    from optimizer.storage import load_or_create, open_storage

    database = tmp_path / "wal.db"
    storage = open_storage(f"sqlite:///{database}")
    study = load_or_create(storage, "wal", optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    study.tell(trial, [1.0, 2.0])
    with storage.engine.connect() as connection:
        sync = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    assert sync == 1  # NORMAL, on the driver's own connections
    reader = sqlite3.connect(database)  # another process's view, before the driver closes
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        states = reader.execute("SELECT state FROM trials").fetchall()
    finally:
        reader.close()
    assert states == [("COMPLETE",)]

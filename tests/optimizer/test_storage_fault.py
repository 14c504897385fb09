"""A storage that fails mid-study (here: another process holds SQLite's write lock past the busy
timeout) ends the study with one error line and exit status 5, never a traceback, and the next
run retries what was interrupted."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optimizer.cli import main
from optimizer.storage_faults import EXIT_STORAGE_FAULT
from runners.sim.runner import SimRunner
from runners.types import Candidate, Placement, TrialOutcome, Workload

Write = Callable[[dict[str, object]], Path]


class LockingRunner(SimRunner):
    """Simulates; on its second trial another connection takes the database's write lock."""

    def __init__(self, db: Path) -> None:
        super().__init__()
        self.db, self.calls = db, 0
        self.holder: sqlite3.Connection | None = None

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        self.calls += 1
        if self.calls == 2:
            self.holder = sqlite3.connect(self.db, timeout=0, isolation_level=None)
            self.holder.execute("BEGIN EXCLUSIVE")
        return super().run(candidate, workload, placement)


def test_a_locked_database_mid_study_is_one_error_and_the_rerun_completes(
    shipped_space: dict[str, object],
    write_space: Write,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space = {**shipped_space, "name": "lock"}
    space["engines"] = {"vllm": dict(shipped_space["engines"])["vllm"]}  # type: ignore[call-overload]
    space["workload"] = {**dict(shipped_space["workload"]), "num_prompts": 200}  # type: ignore[call-overload]
    path, db = write_space(space), tmp_path / "lock.db"
    runner = LockingRunner(db)
    monkeypatch.setattr("optimizer.cli.make_runner", lambda *_: runner)
    argv = ["--space", str(path), "--storage", f"sqlite:///{db}", "--n-trials", "4", "--quiet"]
    argv += ["--heartbeat-interval", "1", "--grace-period", "2"]
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code == EXIT_STORAGE_FAULT, err.getvalue()
    text = err.getvalue()
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "storage failed mid-study (database is locked)" in errors[0]
    assert "exceeding max length" not in text
    assert runner.holder is not None
    runner.holder.close()  # the other process lets go
    monkeypatch.undo()
    with redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    trials = optuna.load_study(study_name="lock", storage=f"sqlite:///{db}").trials
    ran = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        and not str(t.user_attrs.get("crash_class", "")).startswith("rejected:")
    ]
    assert len(ran) == 4, "exactly the target of runner trials"
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed, "the trial the storage interrupted was failed"
    retried = {t.system_attrs.get("failed_trial") for t in trials}
    assert {t.number for t in failed} <= retried, "and run again"
    assert not [t for t in trials if t.state == TrialState.RUNNING]

"""The storage failing in the middle of a real study, one fault per test: one error line,
exit status 5, no traceback; the trial it interrupted is failed (at once, or by the next run
once its heartbeat is stale) and retried; the rerun ends at exactly the target. A full disk may
instead hit the write that starts an enqueued trial; then nothing ran yet and the rerun runs it.

- Disk full: the study's folder is a 32 MB tmpfs of its own, mounted in a private mount
  namespace (`unshare`, which needs CAP_SYS_ADMIN; skipped otherwise). Once trials run, the
  test fills the tmpfs through /proc/PID/root; the driver's next write gets ENOSPC, whether it
  is a trial file or the database's. (As root, chmod does not stop writes, and a file system
  with a file open for writing cannot be remounted read-only, so neither serves here.)
- Read-only database: the suite's PostgreSQL server is switched to read-only transactions
  (`ALTER SYSTEM SET default_transaction_read_only`, then a reload, as after a fail-over to a
  hot standby) while a trial runs on the engine emulator; the driver's next write is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TRIALS_BEFORE_FAULT = 4
FAST_RETRY = ["--heartbeat-interval", "1", "--grace-period", "2"]

INSPECT = """
import json, sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=sys.argv[1], storage=sys.argv[2])
print(json.dumps([[t.number, t.state.name, str(t.user_attrs.get("crash_class", "")),
                   t.system_attrs.get("failed_trial")] for t in study.trials]))
"""

Trials = list[tuple[int, str, str, int | None]]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def study_argv(url: str, name: str, n_trials: int, *more: str) -> list[str]:
    return [sys.executable, "-m", "optimizer.study", "--space", "qwen3-moe.yaml",
            "--n-trials", str(n_trials), "--storage", url, "--study-name", name,
            *FAST_RETRY, *more]  # fmt: skip


def run_until_fault(
    argv: list[str],
    cwd: Path,
    fault: Callable[[], None],
    after: int = TRIALS_BEFORE_FAULT,
    ready: Callable[[], bool] = lambda: True,
) -> tuple[int, str]:
    """Start the study; once `after` trials finished and `ready()` holds, cause `fault`. The
    exit status and stderr."""
    process = subprocess.Popen(
        argv, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    finished = 0
    for line in process.stdout:
        finished += line.lstrip().startswith("[")
        if finished == after:
            deadline = time.monotonic() + 120
            while not ready() and time.monotonic() < deadline:
                time.sleep(0.1)
            fault()
            break
    _, err = process.communicate(timeout=300)
    assert finished == after, f"the study ended before the fault: {err}"
    return process.returncode, err


def assert_one_clear_error(code: int, err: str, *reasons: str) -> None:
    """One error line naming the storage fault and one of the `reasons` (the database's own
    words, or the file system's when a trial file hit the fault first)."""
    assert "Traceback" not in err, err
    assert code == 5, err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1, err
    assert "storage failed mid-study" in errors[0], errors[0]
    assert any(reason in errors[0] for reason in reasons), errors[0]
    assert "exceeding max length" not in err


def ran(trials: Trials) -> list[int]:
    """Trials that reached the runner (not pre-flight rejections)."""
    return [
        number
        for number, state, crash, _ in trials
        if state in ("COMPLETE", "PRUNED") and not crash.startswith("rejected:")
    ]


def assert_retried_to_target(
    before: Trials, after: Trials, target: int, may_hit_a_start: bool = False
) -> None:
    """The interrupted trial is failed and retried. With `may_hit_a_start`, the fault may
    instead have hit the write that starts an enqueued trial (no trial ran yet): the rerun
    then runs that trial."""
    interrupted = {n for n, state, _, _ in before if state in ("RUNNING", "FAIL")}
    states = {n: state for n, state, _, _ in after}
    if may_hit_a_start and not interrupted:
        enqueued = {n for n, state, _, _ in before if state == "WAITING"}
        assert any(states[n] in ("COMPLETE", "PRUNED") for n in enqueued), "the fault hit a start"
    else:
        assert interrupted, "the fault interrupted a trial"
    assert {states[n] for n in interrupted} <= {"FAIL"}, "the interrupted trial was failed"
    retried = {source for *_, source in after if source is not None}
    assert interrupted <= retried, "and run again"
    assert "RUNNING" not in states.values()
    assert len(ran(after)) == target, "exactly the target"


# --- disk full ------------------------------------------------------------------------------


@pytest.fixture
def own_tmpfs(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """(pid of a process in a private mount namespace, a 32 MB tmpfs folder seen only there)."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("no unshare/nsenter")
    folder = tmp_path / "studies"
    folder.mkdir()
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "900"])
    try:
        mounted = subprocess.run(
            ["nsenter", "-t", str(holder.pid), "-m", "mount", "-t", "tmpfs", "-o", "size=32m",
             "tmpfs", str(folder)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs in a private namespace: {mounted.stderr.strip()}")
        yield holder.pid, folder
    finally:
        holder.kill()
        holder.wait()


def in_namespace(pid: int, cwd: Path, argv: list[str]) -> list[str]:
    return ["nsenter", "-t", str(pid), "-m", f"--wd={cwd}", *argv]


def inspect_in(pid: int, cwd: Path, name: str, url: str) -> Trials:
    done = subprocess.run(
        in_namespace(pid, cwd, [sys.executable, "-c", INSPECT, name, url]),
        env=env(), capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return [tuple(row) for row in json.loads(done.stdout)]  # type: ignore[misc]


def test_a_full_disk_mid_study(own_tmpfs: tuple[int, Path], tmp_path: Path) -> None:
    pid, folder = own_tmpfs
    url = f"sqlite:///{folder}/full.db"
    filler = Path(f"/proc/{pid}/root{folder}/filler")

    def fill_the_disk() -> None:
        with filler.open("wb") as handle:
            try:
                while True:
                    handle.write(bytes(1 << 20))
                    handle.flush()
            except OSError:
                pass

    code, err = run_until_fault(
        in_namespace(pid, tmp_path, study_argv(url, "full", 400)), tmp_path, fill_the_disk
    )
    assert_one_clear_error(code, err, "No space left on device", "disk is full")
    filler.unlink()  # space is freed
    before = inspect_in(pid, tmp_path, "full", url)
    target = len(ran(before)) + 2
    rerun = subprocess.run(
        in_namespace(pid, tmp_path, study_argv(url, "full", target)),
        env=env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    after = inspect_in(pid, tmp_path, "full", url)
    assert_retried_to_target(before, after, target, may_hit_a_start=True)


# --- read-only database ---------------------------------------------------------------------


def admin_dsn(url: str) -> str:
    parsed = make_url(url)
    return (
        f"host={parsed.host} port={parsed.port} user={parsed.username} dbname={parsed.database} "
        "options='-c default_transaction_read_only=off'"
    )


def set_read_only(url: str, on: bool) -> None:
    with psycopg.connect(admin_dsn(url), autocommit=True) as admin:
        if on:
            admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        admin.execute("SELECT pg_reload_conf()")


def inspect(name: str, url: str) -> Trials:
    done = subprocess.run(
        [sys.executable, "-c", INSPECT, name, url],
        env=env(), capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return [tuple(row) for row in json.loads(done.stdout)]  # type: ignore[misc]


def a_trial_runs(url: str, name: str) -> bool:
    query = (
        "SELECT count(*) FROM trials JOIN studies USING (study_id) "
        "WHERE study_name = %s AND state = 'RUNNING'"
    )
    with psycopg.connect(admin_dsn(url)) as reader:
        row = reader.execute(query, (name,)).fetchone()
    return bool(row and row[0])


@pytest.mark.postgres
def test_a_database_turned_read_only_mid_study(postgres_server: str, tmp_path: Path) -> None:
    """On the engine emulator (a trial lasts seconds), so the fault lands while one runs."""
    name = "turned_read_only"
    try:
        code, err = run_until_fault(
            study_argv(postgres_server, name, 400, "--runner", "emulator"),
            tmp_path,
            lambda: set_read_only(postgres_server, True),
            after=1,
            ready=lambda: a_trial_runs(postgres_server, name),
        )
    finally:
        set_read_only(postgres_server, False)
    assert_one_clear_error(code, err, "read-only transaction")
    before = inspect(name, postgres_server)
    target = len(ran(before)) + 2
    rerun = subprocess.run(
        study_argv(postgres_server, name, target, "--runner", "emulator"),
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert_retried_to_target(before, inspect(name, postgres_server), target)

"""Where studies live, and how several drivers share one without losing or duplicating trials.

The default is ``sqlite:///studies/<study-name>.db`` relative to the working directory, so
running the same command again finds the same study; any RDB URL works (``postgresql://...``
with the `postgres` extra). Opening storage is the first thing that writes anything, and it
happens only after the space file has been validated.

Durability: storage is opened with heartbeats. The driver beats for the trial it runs
(`Heartbeat`); a trial whose driver or worker died stops beating, and after the grace period
any driver fails it and `RetryHeartbeatStaleTrialCallback` enqueues it again (same parameters),
so it is re-run, not lost. `trial_slot` makes "count what is finished or running, then ask" atomic
across drivers (a PostgreSQL advisory lock, or a file lock beside a SQLite file), so
cooperating drivers stop at exactly the requested total.

SQLite files are switched to write-ahead logging with ``synchronous=NORMAL`` (`_tune_sqlite`):
a commit then costs one WAL append instead of two fsyncs, which is most of the driver's time per
trial. Every committed trial survives a killed or crashed driver; only an operating-system crash
or power loss can roll back the last few commits (those trials are simply run again), and the
file is never corrupted. WAL needs a local file system (not NFS); use PostgreSQL for a study
shared across machines.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy import event, text

from optimizer.errors import StudyError
from optimizer.redaction import redact as redact  # re-exported: callers import it from here
from optimizer.redaction import scrub
from optimizer.sqlite_url import is_read_only, sqlite_file
from optimizer.storage_faults import STORAGE_FAULTS, database_reason

STUDIES_DIR = Path("studies")
DEFAULT_HEARTBEAT_S = 10
DEFAULT_GRACE_S = 30
MAX_RETRY = 3
SCHEMA_RACE_RETRIES = 4


def default_storage_url(study_name: str, studies_dir: Path = STUDIES_DIR) -> str:
    return f"sqlite:///{studies_dir / f'{study_name}.db'}"


def open_storage(
    url: str, heartbeat_s: int = DEFAULT_HEARTBEAT_S, grace_s: int = DEFAULT_GRACE_S
) -> RDBStorage:
    """Open (creating if needed) the RDB storage at `url`; `StudyError` when it cannot be used."""
    if "://" not in url:
        raise StudyError(
            f"--storage {redact(url)!r} is not a database URL; use e.g. sqlite:///studies/x.db "
            "or postgresql://user:password@host/db"
        )
    if is_read_only(url):
        raise StudyError(
            f"--storage {redact(url)!r} opens the database read-only, but a study writes its "
            "trials there; drop mode=ro (or immutable=1) from the URL. The report, export and "
            "dashboard commands can read a read-only storage"
        )
    if grace_s <= heartbeat_s:
        raise StudyError(
            f"--grace-period ({grace_s} s) must be longer than --heartbeat-interval "
            f"({heartbeat_s} s), or live trials would be failed"
        )
    database = sqlite_file(url)
    if database is not None:
        folder = database.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StudyError(
                f"cannot create the studies folder {str(folder)!r} ({exc.strerror}); choose "
                "another place with --storage sqlite:///PATH.db"
            ) from None
        _refuse_damaged_sqlite(database)
    last_error: Exception | None = None
    for attempt in range(SCHEMA_RACE_RETRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RDBStorage(
                    url,
                    heartbeat_interval=heartbeat_s,
                    grace_period=grace_s,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=MAX_RETRY
                    ),
                )
                if url.startswith("sqlite:"):
                    _tune_sqlite(storage)
                return storage
        except Exception as exc:  # sqlalchemy raises many types; the user needs the message
            # Two drivers creating the schema of a new database at once collide on its
            # version table; the loser finds the schema complete a moment later.
            last_error = exc
            time.sleep(0.5 * (attempt + 1))
    first_line = database_reason(last_error) if last_error else "unknown error"
    raise StudyError(f"cannot open storage {redact(url)!r}: {scrub(first_line, url)}")


def _refuse_damaged_sqlite(path: Path) -> None:
    """Check an existing SQLite file read-only before anything opens it for writing.

    Opening a damaged file through SQLAlchemy would already write to it (the journal mode is
    switched on connect), so a corrupt database is detected here, with a read-only connection
    and SQLite's own `quick_check`, and refused untouched.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    problem = ""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = connection.execute("PRAGMA quick_check").fetchall()
        finally:
            connection.close()
        if rows != [("ok",)]:
            problem = "; ".join(str(row[0]) for row in rows[:3])
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "unable to open" in str(exc):
            return  # busy or unreadable: the real open below reports it
        problem = str(exc)
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    if problem:
        raise StudyError(
            f"{path} is damaged (SQLite: {problem}); nothing was written to it. Restore it "
            "from a backup, or start another study with --storage sqlite:///OTHER.db"
        )


def _tune_sqlite(storage: RDBStorage) -> None:
    """WAL journal (persistent in the file) and NORMAL sync on every connection from now on."""

    def on_connect(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections made while creating the schema lack the pragmas


def load_or_create(
    storage: BaseStorage, study_name: str, sampler: optuna.samplers.BaseSampler
) -> optuna.Study:
    """Load the study if it exists (resume), otherwise create it with our two directions."""
    url = getattr(storage, "url", None)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            sampler=sampler,
            directions=["maximize", "minimize"],
            load_if_exists=True,
        )
    except ValueError as exc:
        raise StudyError(f"study {study_name!r} cannot be used: {scrub(str(exc), url)}") from None
    except Exception as exc:  # a corrupt or foreign database: say so, touch nothing
        first_line = database_reason(exc)
        raise StudyError(
            f"study {study_name!r} cannot be opened: {scrub(first_line, url)}"
        ) from None
    if [d.name for d in study.directions] != ["MAXIMIZE", "MINIMIZE"]:
        raise StudyError(
            f"study {study_name!r} already exists in this storage with directions "
            f"{[d.name.lower() for d in study.directions]}; use another --study-name"
        )
    return study


def fail_stale_trials(study: optuna.Study, storage: BaseStorage) -> None:
    """Fail trials whose driver stopped beating; the retry callback re-enqueues them.

    `storage` is the one the study was opened on (`open_storage`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    _fail_trials_that_never_beat(study, storage)


def _fail_trials_that_never_beat(study: optuna.Study, storage: BaseStorage) -> None:
    """Fail (and retry) RUNNING trials older than the grace period that have no heartbeat.

    A driver killed between asking for a trial and recording its first heartbeat leaves a
    RUNNING trial that Optuna never finds stale (it only looks at trials that have beaten), so
    every later driver would wait for it forever.
    """
    interval = storage.get_heartbeat_interval() if isinstance(storage, RDBStorage) else None
    if not isinstance(storage, RDBStorage) or interval is None:
        return
    grace_s = storage.grace_period or 2 * interval
    numbers = [
        t.number
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if t.datetime_start is not None
        and (datetime.now() - t.datetime_start).total_seconds() > grace_s
    ]
    if not numbers:
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    old = {storage.get_trial_id_from_study_id_trial_number(study_id, n) for n in numbers}
    with storage.engine.connect() as connection:
        rows = connection.execute(text("SELECT trial_id FROM trial_heartbeats")).fetchall()
    beaten = {int(row[0]) for row in rows}
    callback = storage.get_heartbeat_stale_trial_callback()
    for trial_id in sorted(old - beaten):
        try:
            if not storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another driver failed it first
        if callback is not None:
            callback(study, storage.get_trial(trial_id))


@contextlib.contextmanager
def trial_slot(storage: BaseStorage, study_name: str) -> Iterator[None]:
    """Hold a lock shared by every driver of this study while it counts and asks."""
    if not isinstance(storage, RDBStorage):
        yield
        return
    url = str(storage.url)
    database = sqlite_file(url)
    if database is not None:
        lock_path = database.with_name(database.name + ".lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if url.startswith("postgresql"):
        key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
        with storage.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
        return
    yield


class Heartbeat:
    """Record heartbeats for one running trial from a background thread until closed."""

    def __init__(self, storage: BaseStorage, trial_id: int) -> None:
        self._store = storage
        self._id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        interval = storage.get_heartbeat_interval() if isinstance(storage, RDBStorage) else None
        self._interval = interval

    def __enter__(self) -> Heartbeat:
        if self._interval is not None and isinstance(self._store, RDBStorage):
            self._store.record_heartbeat(self._id)
            self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")
            self._thread.start()
        return self

    def _beat(self) -> None:
        assert isinstance(self._store, RDBStorage) and self._interval is not None
        while not self._stop.wait(self._interval):
            try:
                self._store.record_heartbeat(self._id)
            except STORAGE_FAULTS:
                # A storage that refuses a heartbeat (read-only, full, locked) refuses the
                # driver's own next write too, which reports it in one line; beating again at
                # the next interval keeps the trial alive if the fault passes.
                continue

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

"""A storage that fails in the middle of a study, said in one line instead of a traceback.

Place in the data flow: `optimizer.cli.main` catches `STORAGE_FAULTS`, and the file-system
errors `is_storage_fault` recognises (a full disk or quota, a read-only file system, a file
size limit: the study's database and its trial files share the disk), around the whole study.
By then the loop has failed the trials in flight where the storage still took the write (and
queued them again), so the next run retries them; a trial the storage refused to fail stays
RUNNING until a later driver finds its heartbeat stale and retries it. The message names the
database's own reason (a read-only file, a full disk, a lock held too long), never Optuna's
generic "exceeding max length" wrapper, and the storage URL is never printed with its secret.
"""

from __future__ import annotations

import errno

import optuna
from sqlalchemy.exc import SQLAlchemyError

EXIT_STORAGE_FAULT = 5
STORAGE_FAULTS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    optuna.exceptions.StorageInternalError,
)
CAUGHT: tuple[type[BaseException], ...] = (*STORAGE_FAULTS, OSError)
"""What a command catches around a study; `is_storage_fault` says which of them it handles."""
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def is_storage_fault(exc: BaseException) -> bool:
    """Whether `exc` is the storage failing: the database's error, or a file the study writes
    refused by a full disk, a quota, a read-only file system or a file size limit."""
    if isinstance(exc, STORAGE_FAULTS):
        return True
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def storage_fault_message(exc: BaseException) -> str:
    """The database's reason for `exc` (the cause Optuna wrapped, if any) and what to do."""
    return (
        f"the study's storage failed mid-study ({database_reason(exc)}). Trials in flight were "
        "marked failed where the storage still accepted it, and the next run retries them. Fix "
        "the storage (disk space, permissions, the process holding its lock) and run the same "
        "command again"
    )


def database_reason(exc: BaseException) -> str:
    """The first line of the database's own words for `exc`, under Optuna's generic wrapper
    ("... e.g. exceeding max length"), or the file system's for an OSError."""
    cause: BaseException = exc
    while isinstance(cause, optuna.exceptions.StorageInternalError) and cause.__cause__:
        cause = cause.__cause__
    reason = getattr(cause, "orig", None) or cause
    text = str(reason).strip().splitlines()
    first = text[0] if text else type(reason).__name__
    if isinstance(reason, OSError) and reason.strerror:
        first = (
            f"{reason.strerror} writing {reason.filename}" if reason.filename else reason.strerror
        )
    return first

"""Commands printed for the user to copy and paste, shell-quoted.

A study name is a safe word (`optimizer.paths`), but a storage URL is anything the user typed:
a SQLite path with a space or ';' must come back from the shell as the same single argument.
Every printed command is built here from an argv list with `shlex.join`; storage URLs are
redacted first, so a password never shows (the user types it back in place of ***).
"""

from __future__ import annotations

import shlex

from optimizer.redaction import redact
from optimizer.storage import default_storage_url


def command_line(*argv: str) -> str:
    """`argv` as one line a POSIX shell splits back into exactly `argv`."""
    return shlex.join(argv)


def study_command(command: str, study_name: str, storage_url: str | None = None) -> str:
    """``python -m optimizer.<command> NAME [--storage URL]``; the storage is named only when
    the study is not at its default place."""
    argv = ["python", "-m", f"optimizer.{command}", study_name]
    if storage_url is not None and storage_url != default_storage_url(study_name):
        argv += ["--storage", redact(storage_url)]
    return command_line(*argv)

"""Ctrl-C at any moment of a command ends it with exit 130 and one line, never a traceback.

Place in the data flow: before everything else. `optimizer/__init__.py` calls
`install_for_commands()`, which acts only when this process is one of the tool's commands
(``python -m optimizer.<module>`` or the ``serving-optimizer`` script), so the hook is in place
before a command's module starts importing Optuna, pandas or SQLAlchemy; a program that merely
imports the package keeps its own behaviour. The study loop still catches its own interrupt
(it fails the trials in flight and returns 130 or 143); this hook catches the interrupts nobody
caught: during imports, argument parsing, opening the storage, writing a report. SIGTERM's
marked interrupt (`optimizer.interrupts`) exits 143.

A Ctrl-C while the interpreter shuts down (waiting for threads, running exit callbacks) reaches
Python's "unraisable" hook instead, which is quieted the same way. A SIGINT that arrives before
Python has run this package (while the interpreter itself starts) is Python's own to handle.

The same hook gives one `error:` line and exit 2, as the commands' own handlers do, for one of
the tool's errors raised before a command's handler runs: `runners.sim` refuses at import a
compiled build that no longer matches its sources (after a `git pull` without reinstalling).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

from optimizer.interrupts import EXIT_TERMINATED, is_sigterm

EXIT_INTERRUPTED = 130
EXIT_USAGE = 2
CONSOLE_SCRIPT = "serving-optimizer"


def is_command_process(orig_argv: list[str], argv: list[str]) -> bool:
    """Whether the process runs one of this tool's commands (not a program importing it)."""
    if argv and Path(argv[0]).name == CONSOLE_SCRIPT:
        return True
    for index, word in enumerate(orig_argv[1:], start=1):
        if word == "-m":
            target = orig_argv[index + 1] if index + 1 < len(orig_argv) else ""
        elif word.startswith("-m"):
            target = word[2:]
        else:
            continue
        return target == "optimizer" or target.startswith("optimizer.")
    return False


def _hook(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        _exit_interrupted(value)
        return
    errors = sys.modules.get("runners.errors")  # loaded if one of its errors was raised
    if errors is not None and issubclass(kind, errors.ServingOptimizerError):
        _exit_with_error(value)
    sys.__excepthook__(kind, value, trace)


def _exit_with_error(value: BaseException) -> None:
    """What the commands' own handlers do with the tool's errors, for one raised before a
    command's handler runs (while its modules import)."""
    try:
        sys.stdout.flush()
        print(f"error: {value}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    os._exit(EXIT_USAGE)


def _unraisable_hook(unraisable: sys.UnraisableHookArgs) -> None:
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _exit_interrupted(unraisable.exc_value)
    sys.__unraisablehook__(unraisable)


def _exit_interrupted(value: BaseException) -> None:
    terminated = isinstance(value, KeyboardInterrupt) and is_sigterm(value)
    try:
        sys.stdout.flush()
        print("\ninterrupted", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # a closed or broken pipe: nothing more to say
        pass
    # os._exit: returning would let Python re-raise SIGINT on itself (status -2, not 130)
    os._exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)


def install_for_commands() -> None:
    """Make an uncaught Ctrl-C quiet (exit 130) when this process is one of the commands."""
    if is_command_process(list(getattr(sys, "orig_argv", [])), list(sys.argv)):
        install()


def install() -> None:
    """Make an uncaught Ctrl-C quiet (exit 130, 143 for SIGTERM's), also during shut-down."""
    sys.excepthook = _hook
    sys.unraisablehook = _unraisable_hook

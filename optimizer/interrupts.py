"""SIGTERM handled like Ctrl-C while a study runs.

Place in the data flow: `optimizer.loop.run_study` runs its loop inside `sigterm_interrupts()`.
Without it, SIGTERM (a scheduler's stop, `kill`, `docker stop`) ended the driver at once and
left its trials RUNNING until another driver found their heartbeat stale. With it, SIGTERM
raises a `KeyboardInterrupt` marked as SIGTERM's (`is_sigterm`) in the main thread, so the loop
fails the trials in flight and enqueues them again exactly as it does on Ctrl-C, and exits 143
(128 + SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

EXIT_TERMINATED = 128 + signal.SIGTERM
_SIGTERM_MARK = "SIGTERM"


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(_SIGTERM_MARK)


def is_sigterm(stop: KeyboardInterrupt) -> bool:
    """Whether this interrupt is SIGTERM's rather than Ctrl-C's."""
    return stop.args == (_SIGTERM_MARK,)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises a marked `KeyboardInterrupt`; the previous handler is
    restored after. Only the main thread can handle signals, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Where a running trial is: launching, warming up, measuring (or simulating), as it happens.

Place in the data flow: runners call `report_phase` at each step of a trial (`runners.local`
before it starts the engine, `runners.measure` and the load generator around the warm-up,
`runners.sim.runner` as it simulates); the pool that runs the trial names it (`trial_phases`,
with the trial's key), and the driver's progress display listens (`phase_listener`). Both are
context variables, so a runner with no listener (a Ray actor, a test, a script) reports into
nothing, and nothing here knows about the display. The asyncio tasks of the load generator
inherit the context of the call that started them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Literal

Phase = Literal["launching", "warming up", "measuring", "simulating"]
Listener = Callable[[int, Phase], None]

_LISTENER: ContextVar[Listener | None] = ContextVar("phase_listener", default=None)
_TRIAL: ContextVar[int | None] = ContextVar("phase_trial", default=None)


def report_phase(phase: Phase) -> None:
    """Tell the listener (if any) that the current trial entered `phase`."""
    listener, trial = _LISTENER.get(), _TRIAL.get()
    if listener is not None and trial is not None:
        listener(trial, phase)


@contextlib.contextmanager
def phase_listener(listener: Listener) -> Iterator[None]:
    """Phases reported inside this block go to `listener(trial key, phase)`."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


@contextlib.contextmanager
def trial_phases(key: int) -> Iterator[None]:
    """Phases reported inside this block belong to trial `key` (the pool's key)."""
    token = _TRIAL.set(key)
    try:
        yield
    finally:
        _TRIAL.reset(token)

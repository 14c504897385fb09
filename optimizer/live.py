"""The study's progress while it runs: a live display on a terminal, plain lines elsewhere.

Place in the data flow: `optimizer.progress` owns one `StudyProgress` per study run; the loop
tells it when a trial starts, the runners' phases reach it through `runners.phases` (launching,
warming up, measuring, or simulating), and each finished trial's line and objective values come
through `finished`. On a terminal (`live`), rich redraws a few times a second below the trial
lines: trials done of the total, elapsed time and an ETA (this run's time per finished trial
times the trials left, so concurrency is accounted for), the best value of each objective so
far among trials within their SLOs, and each running trial with its phase and how long it has
been in it. Elsewhere (CI, a pipe, a file) only the trial lines are printed, as they finish;
``--quiet`` prints none.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from optimizer.provenance import Kind
from optimizer.spec.models import ObjectivesSection
from optimizer.trial_line import latency_name, latency_text, throughput_name
from runners.phases import Phase

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

REFRESH_PER_SECOND = 4
MAX_RUNNING_SHOWN = 8


@dataclass
class Running:
    """A trial in flight: what it is, its phase and since when."""

    description: str
    phase: Phase | str = "submitted"
    since: float = field(default_factory=time.monotonic)


@dataclass
class Best:
    value: float
    trial: int


@dataclass
class StudyProgress:
    """Progress of one study run; thread-safe (the live display renders from its own thread)."""

    total: int
    done: int
    kind: Kind
    objectives: ObjectivesSection
    quiet: bool = False
    running: dict[int, Running] = field(default_factory=dict)
    best_throughput: Best | None = None
    best_latency: Best | None = None
    finished_here: int = 0
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _console: Console | None = None

    # --- events -------------------------------------------------------------------------

    def trial_started(self, number: int, description: str) -> None:
        with self._lock:
            self.running[number] = Running(description)

    def phase(self, number: int, phase: Phase) -> None:
        with self._lock:
            trial = self.running.get(number)
            if trial is not None:
                trial.phase, trial.since = phase, time.monotonic()

    def finished(
        self,
        number: int,
        position: int,
        line: str,
        values: tuple[float, float] | None = None,
        feasible: bool = False,
        ran: bool = True,
    ) -> None:
        """A trial is done: `line` is printed; its `values` count for the best so far when
        `feasible`; `ran` is False for a candidate rejected before launch (no runner time)."""
        with self._lock:
            self.running.pop(number, None)
            self.done = max(self.done, position)
            if ran:
                self.finished_here += 1
            if values is not None and feasible:
                tput, lat = values
                if self.best_throughput is None or tput > self.best_throughput.value:
                    self.best_throughput = Best(tput, number)
                if self.best_latency is None or lat < self.best_latency.value:
                    self.best_latency = Best(lat, number)
        if self.quiet:
            return
        if self._console is not None:
            self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, flush=True)

    # --- what is shown ------------------------------------------------------------------

    def eta_s(self, now: float) -> float | None:
        if self.finished_here == 0:
            return None
        per_trial = (now - self.started) / self.finished_here
        return max(0, self.total - self.done) * per_trial

    def status_lines(self, now: float | None = None) -> list[str]:
        """The live display's text: counts and ETA, best so far, the running trials."""
        now = time.monotonic() if now is None else now
        with self._lock:
            eta = self.eta_s(now)
            head = (
                f"{self.done}/{self.total} trials done  elapsed {clock(now - self.started)}  "
                f"ETA {clock(eta) if eta is not None else 'after the first trial'}"
            )
            lines = [head, self.best_text()]
            shown = sorted(self.running.items())[:MAX_RUNNING_SHOWN]
            for number, trial in shown:
                lines.append(
                    f"trial {number:>3}  {trial.phase:<10} {clock(now - trial.since)}  "
                    f"{trial.description}"
                )
            if len(self.running) > len(shown):
                lines.append(f"... and {len(self.running) - len(shown)} more running")
        return lines

    def best_text(self) -> str:
        tput_name, unit = throughput_name(self.objectives)
        lat_name = latency_name(self.objectives.latency)
        if self.best_throughput is None or self.best_latency is None:
            return f"best so far ({self.kind}): none within the SLOs yet"
        return (
            f"best so far ({self.kind}): max {tput_name} {self.best_throughput.value:,.1f} "
            f"{unit} (trial {self.best_throughput.trial})  min {lat_name} "
            f"{latency_text(self.best_latency.value).strip()} (trial {self.best_latency.trial})"
        )

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        head, *rest = self.status_lines()
        top = Table.grid(padding=(0, 1))
        top.add_row(
            ProgressBar(total=max(self.total, 1), completed=min(self.done, self.total), width=30),
            Text(head, style="bold"),
        )
        return Group(top, *(Text(line, no_wrap=True, overflow="ellipsis") for line in rest))

    # --- where it goes ------------------------------------------------------------------

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """Show the live display while the block runs, when stdout is an interactive terminal
        (and not ``--quiet``); otherwise do nothing and let `finished` print plain lines."""
        if self.quiet or not sys.stdout.isatty():
            yield
            return
        from rich.console import Console
        from rich.live import Live

        console = Console()
        if not console.is_terminal or console.is_dumb_terminal:
            yield
            return
        self._console = console
        try:
            with Live(
                self, console=console, refresh_per_second=REFRESH_PER_SECOND, transient=True
            ):
                yield
        finally:
            self._console = None


def clock(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

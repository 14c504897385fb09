"""One engine's registry entry: everything the tool knows about that engine, in one value.

Place in the data flow: each engine folder (runners/engines/<name>/) builds its `EngineEntry`
and `runners.engines.registry` registers it with one line. The entry holds the adapter class
(release catalogue, defaults, parallelism, argument checks, launch rendering, version
ranges), the static rules in the order the engine applies them, the crash table the log
diagnosis reads, the simulator policy (None: the engine cannot be simulated yet), and the
shape of its command line where the emulator can stand in for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from runners.engines.base import EngineAdapter
from runners.engines.policy import SimPolicy
from runners.engines.rules import Rule
from runners.engines.signatures import CrashTable


@dataclass(frozen=True)
class CommandLine:
    """How the engine's own command line names it and its model, for the emulator.

    `prefix` is the argv start (``vllm serve``); `module` a ``python -m`` module found anywhere
    in the argv. `model_flags` are the options naming the model (empty: the first positional).
    """

    prog: str
    prefix: tuple[str, ...] = ()
    module: str = ""
    model_flags: tuple[str, ...] = ()

    def rest(self, argv: list[str]) -> list[str] | None:
        """The arguments after the engine's own command, or None when `argv` is not it."""
        if self.prefix and argv[: len(self.prefix)] == list(self.prefix):
            return argv[len(self.prefix) :]
        if self.module and self.module in argv:
            return argv[argv.index(self.module) + 1 :]
        return None


@dataclass(frozen=True)
class EngineEntry:
    """One engine, complete. `launch` says in words how it starts (for the README table);
    `aliases` are other names published results use for it (a distribution of the same
    engine, with its releases and flags)."""

    name: str
    adapter: type[EngineAdapter]
    launch: str
    rules: tuple[Rule, ...]
    crashes: CrashTable
    sim_policy: SimPolicy | None = None
    command_line: CommandLine | None = None
    aliases: tuple[str, ...] = ()

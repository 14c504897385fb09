"""`serving-optimizer COMMAND ...`: the one console command, delegating to each module's main.

Place in the data flow: the outermost entry. It names the subcommands and hands the rest of
the command line, unchanged, to the `main` of the module that owns the command, which is also
what ``python -m optimizer.<command>`` runs; so both spellings take the same arguments and
give the same exit status. A command's module is imported only when that command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from optimizer.version import add_version_argument

PROG = "serving-optimizer"


@dataclass(frozen=True)
class Command:
    """A subcommand: the module whose ``main(argv) -> int`` runs it, and what it does."""

    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "study": Command("optimizer.cli", "search a space file for the best serving configuration"),
    "validate": Command(
        "optimizer.validate",
        "re-measure a finished study: repeats, ablation, concurrency sweep, workloads",
    ),
    "report": Command("optimizer.report.cli", "write report.md, report.html and pareto.png"),
    "export": Command(
        "optimizer.export.cli",
        "write the deployable artifacts: engine configs, launch script, Kubernetes, front",
    ),
    "retune": Command(
        "optimizer.retune",
        "re-measure under a new engine release or workload; warm-start a new study on drift",
    ),
    "dashboard": Command("optimizer.dashboard", "browse a study in optuna-dashboard"),
}


def command_main(name: str) -> Callable[[Sequence[str] | None], int]:
    """The `main` of a subcommand's module (imported now)."""
    main: Callable[[Sequence[str] | None], int] = importlib.import_module(
        COMMANDS[name].module
    ).main
    return main


def _parser() -> argparse.ArgumentParser:
    width = max(len(name) for name in COMMANDS)
    listing = "\n".join(f"  {name:<{width}}  {c.summary}" for name, c in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bayesian-optimization search for the best LLM serving configuration.",
        epilog=f"commands:\n{listing}\n\n`{PROG} COMMAND --help` shows a command's options; "
        f"`python -m optimizer.COMMAND` runs the same commands.\n"
        f"Example: {PROG} study --space qwen3-moe.yaml --n-trials 50",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_argument(parser)
    parser.add_argument("command", choices=COMMANDS, metavar="COMMAND", help="see below")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return command_main(args[0])(args[1:])
    parser = _parser()
    if args and args[0].startswith("-") and args[0] not in ("-h", "--help", "--version"):
        parser.error(f"the command comes first, e.g. {PROG} study {' '.join(args)}")
    parser.parse_args(args)  # --version, --help, or exit 2 naming the unknown command
    raise AssertionError("argparse exits on anything but a command")  # pragma: no cover


if __name__ == "__main__":
    raise SystemExit(main())

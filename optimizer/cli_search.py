"""The study command's screening and stopping arguments, the stop rule they make, and the
argument types the study command shares.

Place in the data flow: `optimizer.cli.parse_args` adds these arguments and turns them into
`StudyConfig.screening`, `.screening_candidates` and `.stop` (`optimizer.convergence` applies the
stop rule, `optimizer.screening` the screening).
"""

from __future__ import annotations

import argparse

from optimizer.config import (
    DEFAULT_TIME_BUDGET_S,
    SCREENING_CANDIDATES,
    SIM_SCREENING_CANDIDATES,
    StopRule,
)
from optimizer.errors import UsageError


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Screening, and when a simulated study without --n-trials stops."""
    parser.add_argument(
        "--screening",
        choices=["on", "off"],
        default="on",
        help="each sampled trial is the best of K proposals by the study's predictor (the "
        "simulator in simulated studies, the shadow simulator refitted on the study's own "
        "runs with a real runner); default %(default)s",
    )
    parser.add_argument(
        "--screening-candidates",
        type=positive_int,
        metavar="K",
        help=f"proposals scored per screened trial (default {SIM_SCREENING_CANDIDATES} in a "
        f"simulated study, where scoring one costs as much as the trial; {SCREENING_CANDIDATES} "
        "where trials are real)",
    )
    parser.add_argument(
        "--time-budget",
        type=positive_seconds,
        metavar="SECONDS",
        help="a simulated study without --n-trials runs until its front converges or this "
        f"many seconds pass (default {DEFAULT_TIME_BUDGET_S:g})",
    )


def stop_rule(ns: argparse.Namespace) -> StopRule | None:
    """The convergence stop of a simulated study without --n-trials (None: run n_trials)."""
    if ns.n_trials is not None or ns.runner != "sim":
        if ns.time_budget is not None:
            raise UsageError(
                "--time-budget applies to a simulated study without --n-trials (--runner "
                "sim); drop --time-budget, or drop --n-trials to stop on convergence"
            )
        return None
    return StopRule(time_budget_s=ns.time_budget or DEFAULT_TIME_BUDGET_S)


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value

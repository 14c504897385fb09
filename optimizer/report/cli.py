"""`python -m optimizer.report STUDY`: write the report files of a finished study.

Place in the data flow: a command over a stored study; the study is found the same way as by
validate and dashboard (`optimizer.cli.locate`), and `optimizer.report.build` writes the files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from optimizer.cli import add_study_arguments, locate, open_study
from optimizer.recommend import RULES
from optimizer.report.build import write_report
from optimizer.version import add_version_argument
from runners.errors import ServingOptimizerError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m optimizer.report",
        description="Write report.md, report.html and pareto.png of a finished study.",
        epilog="Example: python -m optimizer.report qwen3-moe",
    )
    add_version_argument(parser)
    add_study_arguments(parser)
    parser.add_argument("--out", type=Path, help="directory (default: studies/<name>/)")
    parser.add_argument(
        "--recommend",
        choices=RULES,
        help="the recommendation rule for this report (default: the one the study ran with)",
    )
    ns = parser.parse_args(argv)
    try:
        ref = locate(ns.study, ns.storage, ns.study_name)
        study = open_study(ref)
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = write_report(study, ns.out or ref.directory, ns.recommend)
    print(f"Report: {files.markdown}\n        {files.html}\n        {files.pareto_png}")
    return 0

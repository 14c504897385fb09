"""Crash agreement of the simulator with measured runs: the confusion table, and the boundary.

    python scripts/crash_agreement.py --runs RUNS.csv [--models-dir DIR] [--seed 0]

Replays every row of RUNS (the replay schema, e.g. runners/sim/data/calibration/
gpustack_runs.csv) through the same path as `python -m runners.sim.replay` and compares the
measured outcome (`outcome` column: ``crash`` or ``ok``) with the prediction
(`runners.sim.agreement`). Prints one line per row (``!!`` marks a disagreement) with the
memory pre-flight's crash probability and rule, then the confusion table. Exit status 2 on an
unreadable file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from runners.sim.agreement import crash_confusion
from runners.sim.replay import load_cases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.runs.exists():
        print(f"error: cannot read {args.runs}: no such file or folder", file=sys.stderr)
        return 2
    confusion = crash_confusion(load_cases(args.runs, args.models_dir), args.seed)
    for r in confusion.rows:
        mark = "  " if r.measured_crash == r.predicted_crash else "!!"
        print(
            f"{mark} {r.run_id:9s} measured={'crash' if r.measured_crash else 'ok':5s} "
            f"predicted={'crash' if r.predicted_crash else 'ok':5s} "
            f"p(mem)={r.memory_probability:.2f} {r.memory_rule or '-':24s} {r.crash_class[:28]}"
        )
    print()
    print(confusion.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

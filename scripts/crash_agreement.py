"""Crash agreement of the simulator with measured runs: the confusion table, and the boundary.

    python scripts/crash_agreement.py --runs RUNS.csv [--models-dir DIR] [--seed 0]

Replays every row of RUNS (the replay schema, e.g. the shipped calibration CSV) through the
same path as `python -m runners.sim.replay` and compares the measured outcome (`outcome` column:
``crash`` or ``ok``) with the prediction. Prints the confusion table (crash rows predicted as
crashes, successful runs called crashes), every disagreeing row, and for each row the memory
pre-flight's crash probability and rule (`runners.sim.screen.assess_memory`), so rows near the
memory boundary can be seen with their odds. Rows the tool cannot express (replay outcome
``error``) are counted apart. Exit status 2 on an unreadable file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from runners.sim.replay import load_cases, predict
from runners.sim.screen import assess_memory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.runs.exists():
        print(f"error: cannot read {args.runs}: no such file or folder", file=sys.stderr)
        return 2
    table = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    errors = 0
    lines: list[str] = []
    for row, case in load_cases(args.runs, args.models_dir):
        measured = row.get("outcome", "ok") == "crash"
        pred = predict(case, seed=args.seed)
        if pred["outcome"] == "error":
            errors += 1
            continue
        predicted = pred["outcome"] == "crash"
        table[(measured, predicted)] += 1
        odds = ""
        if case.config is not None:
            memory = assess_memory(case.config)
            odds = f"p(mem)={memory.crash_probability:.2f} {memory.crash_rule or '-'}"
        mark = "  " if measured == predicted else "!!"
        lines.append(
            f"{mark} {row.get('run_id', ''):9s} measured={'crash' if measured else 'ok':5s} "
            f"predicted={'crash' if predicted else 'ok':5s} {odds:38s} "
            f"{str(pred.get('crash_class', ''))[:28]}"
        )
    print("\n".join(lines))
    print()
    print("                    predicted crash   predicted ok")
    print(f"measured crash      {table[(True, True)]:15d}   {table[(True, False)]:12d}")
    print(f"measured ok         {table[(False, True)]:15d}   {table[(False, False)]:12d}")
    crashes = table[(True, True)] + table[(True, False)]
    print(
        f"crash rows predicted: {table[(True, True)]} of {crashes}; successful runs called "
        f"crashes: {table[(False, True)]}; rows the tool cannot express: {errors}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

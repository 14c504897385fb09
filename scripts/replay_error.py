"""Prediction errors of the simulator on measured runs, by split and by closed/open loop.

    python scripts/replay_error.py --runs RUNS.csv [--split holdout] [--models-dir DIR]
        [--calibration FILE.json] [--rows]

Replays the `ok` rows of RUNS (the replay schema) through `runners.sim.replay` and prints, for
throughput, mean TTFT and mean TPOT, the median and the maximum |relative error|
(|predicted - measured| / measured), separately for closed-loop rows (`max_concurrency` set)
and open-loop rows. `--split NAME` keeps only the rows whose `split` column is NAME (e.g. the
held-out rows of tests/data/closed_loop/vllm_cpu_runs.csv, never used to fit). A row predicted
as a crash counts apart. `--calibration` applies a JSON object of calibration keys on top of
the shipped calibration (what a fit produced). `--rows` prints every row's errors.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from runners.sim.params import Calibration, fitted_calibration
from runners.sim.replay import load_cases, predict

METRICS = ("output_throughput", "ttft_mean_ms", "tpot_mean_ms")


def relative_errors(
    rows: Sequence[tuple[Mapping[str, str], Mapping[str, str | float]]],
) -> dict[str, list[float]]:
    errors: dict[str, list[float]] = {m: [] for m in METRICS}
    for row, pred in rows:
        for metric in METRICS:
            measured = float(row.get(metric) or "nan")
            value = pred.get(metric)
            if isinstance(value, float) and measured > 0:
                errors[metric].append(abs(value - measured) / measured)
    return errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--split")
    parser.add_argument("--calibration", type=Path)
    parser.add_argument("--rows", action="store_true")
    args = parser.parse_args(argv)
    if not args.runs.exists():
        print(f"error: cannot read {args.runs}: no such file or folder", file=sys.stderr)
        return 2
    calibration: Calibration | None = None
    if args.calibration is not None:
        calibration = fitted_calibration().updated(json.loads(args.calibration.read_text()))
    groups: dict[str, list[tuple[Mapping[str, str], Mapping[str, str | float]]]] = {
        "closed-loop": [],
        "open-loop": [],
    }
    crashes = 0
    for row, case in load_cases(args.runs, args.models_dir):
        if row.get("outcome", "ok") != "ok":
            continue
        if args.split and row.get("split") != args.split:
            continue
        pred = predict(case, calibration)
        if pred["outcome"] != "ok":
            crashes += 1
            continue
        loop = "closed-loop" if (row.get("max_concurrency") or "").strip() else "open-loop"
        groups[loop].append((row, pred))
        if args.rows:
            cells = []
            for metric in METRICS:
                value, measured = pred.get(metric), float(row.get(metric) or "nan")
                if isinstance(value, float):
                    cells.append(f"{metric} {measured:9.2f} -> {value:9.2f}")
            print(f"{row.get('run_id', ''):18s} " + "  ".join(cells))
    for loop, rows in groups.items():
        if not rows:
            continue
        errors = relative_errors(rows)
        cells = [
            f"{m}: median {100 * statistics.median(e):5.1f}% max {100 * max(e):6.1f}%"
            for m, e in errors.items()
            if e
        ]
        print(f"{loop:11s} ({len(rows):2d} rows)  " + "  ".join(cells))
    if crashes:
        print(f"{crashes} measured ok rows predicted as crashes (not in the errors above)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

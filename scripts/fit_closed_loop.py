"""Fit simulator constants on the `fit` rows of measured closed-loop runs; judge on the others.

    python scripts/fit_closed_loop.py --runs tests/data/closed_loop/vllm_cpu_runs.csv \
        [--keys gpu.CPU-2core-AVX512.mem_bw,...] [--out fitted.json]

A bounded coordinate search in log space (each key within `runners.sim.params.bounds`) over the
given calibration keys, minimising the mean squared log error of mean TTFT, mean TPOT and
output throughput on the rows whose `split` is ``fit``, starting from the shipped calibration.
Repeated rounds of one workload (run ids that differ only in ``-r<round>``) are merged into
their median first, and their spread is printed as the noise floor. Prints the fitted values
and the errors on the ``fit`` workloads and, separately, on the ``holdout`` workloads (never
seen by the fit). `--out` writes the fitted keys as a JSON object that
`scripts/replay_error.py --calibration` applies. The defaults are the CPU device's
efficiencies, which are placeholders before such a fit.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from runners.sim.params import Calibration, bounds, fitted_calibration
from runners.sim.replay import load_cases, predict
from runners.sim.replay_rows import ReplayCase

METRICS = ("ttft_mean_ms", "tpot_mean_ms", "output_throughput")
CPU = "gpu.CPU-2core-AVX512"
DEFAULT_KEYS = (
    f"{CPU}.mem_bw",
    f"{CPU}.dense_bf16",
    f"{CPU}.moe_bf16",
    f"{CPU}.attention",
    f"{CPU}.host_scale",
)
Rows = Sequence[tuple[Mapping[str, str], ReplayCase]]


def log_errors(rows: Rows, calib: Calibration) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for row, case in rows:
        pred = predict(case, calib)
        for metric in METRICS:
            value, measured = pred.get(metric), float(row.get(metric) or "nan")
            if isinstance(value, float) and value > 0 and measured > 0:
                out[metric].append(math.log(value / measured))
            else:
                out[metric].append(5.0)  # a crash or a missing value: a large error
    return out


def loss(rows: Rows, calib: Calibration) -> float:
    errors = log_errors(rows, calib)
    return statistics.fmean(e * e for values in errors.values() for e in values)


def coordinate_search(
    rows: Rows, calib: Calibration, keys: Sequence[str], rounds: int = 8
) -> Calibration:
    """Per key, keep multiplying (or dividing) by `step` while the loss falls, within the
    key's bounds; the step shrinks (square root) every round."""
    best = loss(rows, calib)
    step = 2.0
    for _ in range(rounds):
        for key in keys:
            low, high = bounds(key)
            for factor in (step, 1.0 / step):
                while True:
                    current = _current(calib, key)
                    value = min(high, max(low, current * factor))
                    if value == current:
                        break
                    trial = calib.updated({key: value})
                    score = loss(rows, trial)
                    if score >= best:
                        break
                    best, calib = score, trial
        step = math.sqrt(step)
    return calib


def _current(calib: Calibration, key: str) -> float:
    parts = key.split(".")
    if parts[0] == "gpu":
        return float(getattr(calib.efficiency(".".join(parts[1:-1])), parts[-1]))
    if parts[0] == "engine":
        return float(getattr(calib.engine(parts[1]), parts[2]))
    return calib.scalar(key)


def report(title: str, rows: Rows, calib: Calibration) -> str:
    errors = log_errors(rows, calib)
    cells = []
    for metric, values in errors.items():
        rel = [abs(math.exp(v) - 1.0) for v in values]
        cells.append(
            f"{metric}: median {100 * statistics.median(rel):5.1f}% max {100 * max(rel):6.1f}%"
        )
    return f"{title:9s} ({len(rows):2d} rows)  " + "  ".join(cells)


def round_spread(rows: Rows) -> str:
    """The measurement noise floor: each row's |relative deviation| from the median of the
    rows that repeat its workload (run ids that differ only in their ``-r<round>`` suffix)."""
    groups: dict[str, list[Mapping[str, str]]] = {}
    for row, _ in rows:
        groups.setdefault(row.get("run_id", "").rsplit("-r", 1)[0], []).append(row)
    cells = []
    for metric in METRICS:
        deviations = []
        for group in groups.values():
            values = [float(r[metric]) for r in group if r.get(metric)]
            if len(values) < 2:
                continue
            middle = statistics.median(values)
            deviations.extend(abs(v / middle - 1.0) for v in values)
        if deviations:
            cells.append(f"{metric}: median {100 * statistics.median(deviations):5.1f}%")
    return "spread between rounds of one workload (noise floor)  " + "  ".join(cells)


def median_of_rounds(rows: Rows) -> list[tuple[Mapping[str, str], ReplayCase]]:
    """One row per workload: the rounds' median of every fitted metric (the machine is shared,
    so single rounds carry its load; the median is the robust measurement)."""
    groups: dict[str, list[tuple[Mapping[str, str], ReplayCase]]] = {}
    for row, case in rows:
        groups.setdefault(row.get("run_id", "").rsplit("-r", 1)[0], []).append((row, case))
    out: list[tuple[Mapping[str, str], ReplayCase]] = []
    for name, group in groups.items():
        merged = dict(group[0][0]) | {"run_id": name}
        for metric in METRICS:
            values = [float(r[metric]) for r, _ in group if r.get(metric)]
            merged[metric] = str(statistics.median(values)) if values else ""
        out.append((merged, group[0][1]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--keys", default=",".join(DEFAULT_KEYS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not args.runs.exists():
        print(f"error: cannot read {args.runs}: no such file or folder", file=sys.stderr)
        return 2
    pairs = [(r, c) for r, c in load_cases(args.runs, args.models_dir) if r.get("outcome") == "ok"]
    print(round_spread(pairs))
    pairs = median_of_rounds(pairs)
    fit_rows = [(r, c) for r, c in pairs if r.get("split") == "fit"]
    held = [(r, c) for r, c in pairs if r.get("split") == "holdout"]
    if not fit_rows:
        print(f"error: {args.runs}: no row has split=fit", file=sys.stderr)
        return 2
    keys = [k for k in args.keys.split(",") if k]
    base = fitted_calibration()
    print(report("before: fit", fit_rows, base))
    if held:
        print(report("holdout", held, base))
    calib = coordinate_search(fit_rows, base, keys)
    fitted = {k: round(_current(calib, k), 6) for k in keys}
    for key, value in fitted.items():
        print(f"  {key} = {value:g} (was {_current(base, key):g})")
    print(report("after: fit", fit_rows, calib))
    if held:
        print(report("holdout", held, calib))
    if args.out is not None:
        args.out.write_text(json.dumps(fitted, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m runners.sim.replay --runs RUNS.csv|DIR --out PRED.csv`: predict published runs.

With ``--calibration FILE`` (written by ``python -m runners.sim.calibrate``) every row is
predicted with its engine's corrections from that file; a file whose fit is poor is refused
unless ``--accept-poor-fit`` is given.

Reads benchmark rows (the schema of a calibration CSV, or published headlines carrying their
serve command; a folder means every CSV in it), turns each into a simulator case
(`runners.sim.replay_rows.load_case`: the one model resolver, the engine registry with the
nearest catalogued release for an uncatalogued one, the engine adapters' defaults and argument
checks, the GPUs its flags need when a row states no node size), simulates it, and writes one
row per input with the same metric column names plus `outcome` (ok / crash / error),
`crash_class`, `reason` (one line) and `note` (what was assumed). ok and crash are
predictions; an error row says in its reason why the tool cannot express it. The tool itself
never fails on a row, and it prints how many rows it predicted. `scripts/calibrate_sim.py` uses
`load_cases` and `predict` to fit and cross-validate the simulator on the same path users take.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from runners.bench.metrics import NoMetricValue, summarize
from runners.catalog.resolve import MODELS_DIR_ENV
from runners.errors import ServingOptimizerError
from runners.sim import simulate
from runners.sim.calibration_file import load_calibration
from runners.sim.fit import calibration_for
from runners.sim.params import Calibration
from runners.sim.replay_rows import ReplayCase, load_case

METRIC_COLUMNS: tuple[str, ...] = (
    "duration_s",
    "successful_requests",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "ttft_mean_ms",
    "ttft_median_ms",
    "ttft_p99_ms",
    "tpot_mean_ms",
    "tpot_median_ms",
    "tpot_p99_ms",
    "itl_mean_ms",
    "itl_median_ms",
    "itl_p99_ms",
    "e2el_mean_ms",
    "e2el_median_ms",
    "e2el_p99_ms",
)
OUT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "model",
    "gpu",
    "engine",
    "engine_version",
    *METRIC_COLUMNS,
    "outcome",
    "crash_class",
    "reason",
    "note",
    "kv_cache_tokens",
)


def run_files(path: Path) -> list[Path]:
    """`path` itself, or every CSV of a folder (sorted)."""
    return sorted(path.glob("*.csv")) if path.is_dir() else [path]


def load_cases(
    path: Path, models_dir: Path | None = None, strict_versions: bool = False
) -> list[tuple[dict[str, str], ReplayCase]]:
    rows: list[dict[str, str]] = []
    for file in run_files(path):
        with file.open(newline="", encoding="utf-8") as handle:
            rows.extend(csv.DictReader(handle))
    return [(row, load_case(row, models_dir, strict_versions)) for row in rows]


def predict(
    case: ReplayCase, calibration: Calibration | None = None, seed: int = 0
) -> dict[str, str | float]:
    """Simulated metrics of one case, in the calibration CSV's column names."""
    out: dict[str, str | float] = {
        "run_id": case.run_id,
        "crash_class": "",
        "reason": "",
        "note": case.note,
    }
    if case.error:
        out.update(outcome="error", reason=case.error)
        return out
    if case.crash is not None or case.config is None or case.workload is None:
        crash = case.crash
        out.update(
            outcome="crash",
            crash_class=crash.crash_class.value if crash else "",
            reason=crash.message if crash else "",
        )
        return out
    try:
        result = simulate(case.config, case.workload, seed=seed, calibration=calibration)
    except ServingOptimizerError as exc:  # a figure the simulation needs is unknown
        out.update(outcome="error", reason=f"{type(exc).__name__}: {exc}")
        return out
    out["kv_cache_tokens"] = float(result.kv_cache_tokens)
    if result.crash is not None or result.records is None:
        crash_class = result.crash.crash_class.value if result.crash else "start:exited"
        out.update(
            outcome="crash",
            crash_class=crash_class,
            reason=result.crash.message if result.crash else "no records",
        )
        return out
    try:
        metrics = summarize(result.records, num_gpus=case.config.gpus_per_replica)
    except NoMetricValue as exc:
        out.update(outcome="crash", crash_class="load:no_success", reason=str(exc))
        return out
    flat = metrics.flat()
    out.update(
        outcome="ok",
        duration_s=metrics.duration_s,
        successful_requests=float(metrics.completed),
        total_input_tokens=float(metrics.total_input_tokens),
        total_output_tokens=float(metrics.total_output_tokens),
        request_throughput=metrics.request_throughput_req_s,
        output_throughput=metrics.output_throughput_tok_s,
        total_token_throughput=metrics.total_token_throughput_tok_s,
    )
    for name in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "p99"):
            out[f"{name}_{stat}_ms"] = flat[f"{stat}_{name}_ms"]
    return out


def _format(value: str | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else ""
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runners.sim.replay",
        description="Predict published benchmark rows with the simulator.",
    )
    parser.add_argument(
        "--runs", type=Path, required=True, help="input CSV of measured runs, or a folder of them"
    )
    parser.add_argument("--out", type=Path, required=True, help="output CSV of predictions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--models-dir",
        type=Path,
        help="folder of config.json files (<org>--<name>.json or <org>/<name>/config.json) "
        f"for models outside the catalogue (default: ${MODELS_DIR_ENV})",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help="a calibration file (python -m runners.sim.calibrate): predict with its per-engine "
        "corrections instead of the shipped calibration",
    )
    parser.add_argument(
        "--accept-poor-fit",
        action="store_true",
        help="use a calibration file whose fit is marked poor",
    )
    parser.add_argument(
        "--strict-versions",
        action="store_true",
        help="rows of uncatalogued engine releases are errors (default: the nearest "
        "catalogued release applies)",
    )
    args = parser.parse_args(argv)
    if not args.runs.exists():
        print(f"error: cannot read {args.runs}: no such file or folder", file=sys.stderr)
        return 2
    fit = None
    if args.calibration is not None:
        try:
            fit = load_calibration(args.calibration, args.accept_poor_fit)
        except ServingOptimizerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        cases = load_cases(args.runs, args.models_dir, args.strict_versions)
    except OSError as exc:
        print(f"error: cannot read {args.runs}: {exc}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(OUT_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for row, case in cases:
            calibration = calibration_for(case.config, fit) if case.config and fit else None
            pred = predict(case, calibration, seed=args.seed)
            for key in ("model", "gpu", "engine", "engine_version"):
                pred[key] = row.get(key, "")
            writer.writerow({col: _format(pred.get(col)) for col in OUT_COLUMNS})
            outcome = str(pred["outcome"])
            counts[outcome] = counts.get(outcome, 0) + 1
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    print(f"wrote {len(cases)} predictions to {args.out} ({summary})")
    if fit is not None:
        print(f"with the calibration {args.calibration}: {fit.note}")
    predicted = counts.get("ok", 0) + counts.get("crash", 0)
    share = 100.0 * predicted / len(cases) if cases else 100.0
    print(
        f"predicted {predicted} of {len(cases)} rows ({share:.1f}%); each of the other "
        f"{len(cases) - predicted} says why in its reason column"
    )
    return 0


__all__ = ["METRIC_COLUMNS", "OUT_COLUMNS", "ReplayCase", "load_case", "load_cases", "predict"]


if __name__ == "__main__":
    raise SystemExit(main())

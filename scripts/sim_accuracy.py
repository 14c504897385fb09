"""How well one measured run calibrates the simulator for the rest of its group.

Run: ``python scripts/sim_accuracy.py RUNS.csv`` (or set ``SIM_ACCURACY_RUNS`` to the CSV).

RUNS is a CSV in the calibration schema (`runners.sim.replay_rows`). Rows marked
``calibration_use`` ``yes`` (measurements) or ``crash_example`` (crashes) are used; others
(ambiguous ones) are skipped. Rows are grouped by model x GPU x engine. In each group the
baseline is the group's first row (in file order) that ran ok and that the simulator can
express; `runners.sim.fit.fit_calibration` fits that one run, and `runners.sim.fit.predict`
predicts every other row of the group with it. The same rows are also predicted with the
shipped calibration ("plain") for comparison.

Prints, for total token throughput, mean TTFT and mean TPOT, the median and the max |relative
error| per engine and per setting (the flags a row sets, "defaults" for none), then the crash
agreement: measured crashes predicted as crashes, and successful runs called crashes.
Targets: median throughput error <= 10%, TTFT and TPOT <= 20%. Note that the shipped
calibration was itself fitted on the GPUStack runs, so "plain" is in-sample there.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runners.sim.calibrate_runs import row_metrics
from runners.sim.fit import CalibrationFit, Observation, fit_calibration, predict
from runners.sim.replay_rows import ReplayCase, load_case

ENV = "SIM_ACCURACY_RUNS"
METRICS = {
    "throughput": ("total_token_throughput", "total_token_throughput_tok_s"),
    "TTFT": ("ttft_mean_ms", "mean_ttft_ms"),
    "TPOT": ("tpot_mean_ms", "mean_tpot_ms"),
}
TARGETS = {"throughput": 0.10, "TTFT": 0.20, "TPOT": 0.20}
USED = ("yes", "crash_example")


@dataclass
class Errors:
    """|relative errors| per metric, calibrated and plain."""

    calibrated: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})
    plain: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})


@dataclass
class Tally:
    crash_rows: int = 0
    crash_predicted: int = 0
    ok_rows: int = 0
    false_crashes: int = 0
    inexpressible: int = 0
    predicted_rows: int = 0
    groups: int = 0
    single: int = 0
    false_crash_ids: list[str] = field(default_factory=list)
    missed_crash_ids: list[str] = field(default_factory=list)


def setting_of(row: dict[str, str]) -> str:
    try:
        flags = json.loads(row.get("flags_json") or "{}")
    except json.JSONDecodeError:
        flags = {}
    names = sorted(flags) + sorted(i.split("=", 1)[0] for i in (row.get("env") or "").split())
    return "+".join(names) or "defaults"


def measured(row: dict[str, str], key: str) -> float | None:
    text = (row.get(key) or "").strip()
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def _record(
    errors: Errors, row: dict[str, str], case: ReplayCase, fit: CalibrationFit
) -> bool | None:
    """Add the row's errors; whether the calibrated simulator predicts a crash."""
    assert case.config is not None and case.workload is not None
    calibrated = predict(case.config, case.workload, fit)
    plain = predict(case.config, case.workload, None)
    if calibrated.metrics is None:
        return True
    if (row.get("outcome") or "ok") != "ok":
        return False
    for metric, (column, key) in METRICS.items():
        truth = measured(row, column)
        if truth is None:
            continue
        value = calibrated.metrics.flat()[key]
        errors.calibrated[metric].append(abs(value / truth - 1))
        if plain.metrics is not None:
            errors.plain[metric].append(abs(plain.metrics.flat()[key] / truth - 1))
    return False


def evaluate(
    rows: list[dict[str, str]],
) -> tuple[dict[str, Errors], dict[str, Errors], Errors, Tally]:
    by_engine: dict[str, Errors] = {}
    by_setting: dict[str, Errors] = {}
    overall = Errors()
    tally = Tally()
    groups: dict[tuple[str, str, str], list[tuple[dict[str, str], ReplayCase]]] = {}
    for row in rows:
        if row.get("calibration_use") not in USED:
            continue
        key = (row.get("model_family", ""), row.get("gpu", ""), row.get("engine", ""))
        groups.setdefault(key, []).append((row, load_case(row)))
    for (_, _, engine), members in groups.items():
        ok = [
            (r, c)
            for r, c in members
            if r.get("outcome") == "ok" and c.config is not None and row_metrics(r) is not None
        ]
        if not ok:
            continue
        base_row, base_case = ok[0]
        assert base_case.config is not None and base_case.workload is not None
        tally.groups += 1
        fit = fit_calibration(
            [Observation(base_case.config, base_case.workload, row_metrics(base_row), "baseline")]
        )
        rest = [(r, c) for r, c in members if r is not base_row]
        tally.single += not rest
        for row, case in rest:
            crashed = (row.get("outcome") or "ok") != "ok"
            tally.crash_rows += crashed
            tally.ok_rows += not crashed
            if case.error:
                tally.inexpressible += 1
                continue
            if case.crash is not None:
                predicted_crash: bool | None = True
            else:
                tally.predicted_rows += 1
                setting = setting_of(row)
                sinks = (
                    overall,
                    by_engine.setdefault(engine, Errors()),
                    by_setting.setdefault(f"{engine}: {setting}", Errors()),
                )
                scratch = Errors()
                predicted_crash = _record(scratch, row, case, fit)
                for sink in sinks:
                    for metric in METRICS:
                        sink.calibrated[metric] += scratch.calibrated[metric]
                        sink.plain[metric] += scratch.plain[metric]
            if crashed and predicted_crash:
                tally.crash_predicted += 1
            elif crashed:
                tally.missed_crash_ids.append(row.get("run_id", ""))
            elif predicted_crash:
                tally.false_crashes += 1
                tally.false_crash_ids.append(row.get("run_id", ""))
    return by_engine, by_setting, overall, tally


def cell(values: list[float]) -> str:
    if not values:
        return "        -        "
    return f"{100 * statistics.median(values):6.1f}% /{100 * max(values):6.1f}%"


def table(title: str, rows: dict[str, Errors], width: int) -> None:
    print(f"\n{title} (median / max |error|; calibrated on the baseline, then plain)")
    head = "".join(f" {m:>17}" for m in METRICS)
    print(f"{'':<{width}} {'n':>3} {head} |{head}")
    for name, errors in sorted(rows.items()):
        n = len(errors.calibrated["throughput"])
        calibrated = "".join(f" {cell(errors.calibrated[m]):>17}" for m in METRICS)
        plain = "".join(f" {cell(errors.plain[m]):>17}" for m in METRICS)
        print(f"{name:<{width}} {n:>3} {calibrated} |{plain}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", help=f"the runs CSV (default: ${ENV})")
    args = parser.parse_args(argv)
    path = args.runs or os.environ.get(ENV)
    if not path:
        print(f"error: give the runs CSV as an argument or in ${ENV}", file=sys.stderr)
        return 2
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        print(f"error: {path}: cannot be read: {exc.strerror}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    by_engine, by_setting, overall, tally = evaluate(rows)
    print(
        f"runs: {path}; {tally.groups} model x GPU x engine groups, each calibrated on its "
        f"baseline (first ok run); {tally.predicted_rows} other rows predicted, "
        f"{tally.inexpressible} not expressible; {tally.single} groups had no other row"
    )
    table("per engine", by_engine, 8)
    table("per engine and setting", by_setting, max((len(k) for k in by_setting), default=8))
    print("\noverall, calibrated on one run per group (target) | plain:")
    for metric in METRICS:
        values, plain = overall.calibrated[metric], overall.plain[metric]
        if not values:
            continue
        median = statistics.median(values)
        verdict = "meets" if median <= TARGETS[metric] else "misses"
        print(
            f"  {metric:<10} median {100 * median:5.1f}% max {100 * max(values):6.1f}% "
            f"({verdict} <= {100 * TARGETS[metric]:.0f}%) | plain median "
            f"{100 * statistics.median(plain):5.1f}% max {100 * max(plain):6.1f}%"
        )
    print(
        f"crashes: {tally.crash_predicted} of {tally.crash_rows} measured crashes predicted"
        f" (missed: {', '.join(tally.missed_crash_ids) or 'none'}); {tally.false_crashes} of "
        f"{tally.ok_rows} successful runs called crashes "
        f"({', '.join(tally.false_crash_ids) or 'none'})"
    )
    print(f"time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Reporting a calibration: error tables, per-run rows and rank agreement (Kendall tau).

Where it sits: `scripts/calibrate_sim.py` predicts every measured run with a fitted
`Calibration` (in-sample, and cross-validated) and prints what these functions compute from
the predictions and the `Target`s of `scripts/calibration_fit.py`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from calibration_fit import METRICS, Target


def errors(
    targets: Sequence[Target], preds: dict[str, dict[str, str | float]]
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for t in targets:
        pred = preds[t.row["run_id"]]
        for metric in METRICS:
            meas = t.measured(metric)
            value = pred.get(metric)
            if meas and isinstance(value, float) and pred["outcome"] == "ok":
                out[metric].append(value / meas - 1.0)
    return out


def summary_table(title: str, errs: dict[str, list[float]], n_failed: int) -> list[str]:
    lines = [
        title,
        f"  {'metric':24s} {'n':>3s} {'MAPE':>7s} {'median':>7s} {'p90':>7s} {'max':>7s} "
        f"{'bias':>7s}",
    ]
    for metric, values in errs.items():
        if not values:
            continue
        ape = sorted(abs(v) for v in values)
        p90 = ape[min(len(ape) - 1, math.ceil(0.9 * len(ape)) - 1)]
        lines.append(
            f"  {metric:24s} {len(values):3d} {100 * statistics.mean(ape):6.1f}% "
            f"{100 * statistics.median(ape):6.1f}% {100 * p90:6.1f}% {100 * ape[-1]:6.1f}% "
            f"{100 * statistics.mean(values):+6.1f}%"
        )
    if n_failed:
        lines.append(f"  ({n_failed} successful runs predicted as crashes: excluded above)")
    return lines


def kendall_tau(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    concordant = discordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            s = (xs[i] - xs[j]) * (ys[i] - ys[j])
            if s > 0:
                concordant += 1
            elif s < 0:
                discordant += 1
    pairs = n * (n - 1) / 2
    return (concordant - discordant) / pairs if pairs else float("nan")


def section_taus(
    targets: Sequence[Target], preds: dict[str, dict[str, str | float]]
) -> list[tuple[str, int, float]]:
    """Kendall tau per tuning section (same doc, same numbered section, same workload)."""
    sections: dict[str, list[Target]] = {}
    for t in targets:
        if t.row["section"].startswith("Other"):
            continue
        key = f"{t.group} | {t.row['section']}"
        sections.setdefault(key, []).append(t)
    # The doc-level sweep of every ShareGPT experiment config.
    for t in targets:
        if t.row["dataset"] == "sharegpt" and not t.row["section"].startswith("Other"):
            sections.setdefault(f"{t.group} | all ShareGPT experiments", []).append(t)
    out: list[tuple[str, int, float]] = []
    for name, rows in sorted(sections.items()):
        pairs = [
            (float(t.row["total_token_throughput"]), preds[t.row["run_id"]])
            for t in rows
            if t.row["total_token_throughput"]
        ]
        usable = [
            (m, float(p["total_token_throughput"]))
            for m, p in pairs
            if p["outcome"] == "ok" and isinstance(p.get("total_token_throughput"), float)
        ]
        if len(usable) >= 3:
            out.append(
                (name, len(usable), kendall_tau([u[0] for u in usable], [u[1] for u in usable]))
            )
    return out


def per_run_table(targets: Sequence[Target], preds: dict[str, dict[str, str | float]]) -> None:
    print(
        f"  {'run':9s} {'group':22s} {'engine':7s} {'workload':13s} {'config':38s} "
        f"{'total tok/s meas->sim':>24s} {'TTFT':>7s} {'TPOT':>7s} {'ITL':>7s}"
    )
    for t in targets:
        pred = preds[t.row["run_id"]]
        workload = t.row["dataset"] + (
            f" {t.row['input_len']}/{t.row['output_len']}" if t.row["input_len"] else ""
        )
        config = (t.row["flags_json"] + " " + t.row["env"]).strip()[:38]
        if pred["outcome"] != "ok":
            print(
                f"  {t.row['run_id']:9s} {t.group:22s} {t.engine:7s} {workload:13s} "
                f"{config:38s} {pred['outcome']}: {str(pred.get('reason', ''))[:60]}"
            )
            continue
        cells = []
        for metric in METRICS[1:]:
            meas = t.measured(metric)
            value = pred.get(metric)
            if meas and isinstance(value, float):
                cells.append(f"{100 * (value / meas - 1):+6.0f}%")
            else:
                cells.append("      -")
        meas_tp = float(t.row["total_token_throughput"])
        sim_tp = float(pred["total_token_throughput"])
        print(
            f"  {t.row['run_id']:9s} {t.group:22s} {t.engine:7s} {workload:13s} {config:38s} "
            f"{meas_tp:9,.0f} -> {sim_tp:7,.0f} {100 * (sim_tp / meas_tp - 1):+4.0f}% "
            + " ".join(cells)
        )

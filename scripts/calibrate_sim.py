"""Fit the simulator's efficiencies on published measurements and report honest errors.

Run: ``python scripts/calibrate_sim.py [--data DIR] [--no-write] [--no-cv]``.

Reads ``gpustack_runs.csv`` (rows with ``calibration_use=yes`` are metric targets, rows with
``crash_example`` are crash examples), turns every row into a simulator case through the same
path users take (`runners.sim.replay`: Candidate -> engine adapter -> ServingConfig), and fits in
stages, each a bounded coordinate search in log space over a few keys of
`runners.sim.params.Calibration`:

  A/B  GPU physics per GPU and dtype (HBM, dense / MoE / FP8 / 4-bit GEMM and attention
       efficiencies, EP imbalance) on vLLM rows: throughput x2 and TPOT;
  C    host costs per engine (API-server ingestion, output streaming, engine CPU per step) on
       TTFT, TPOT, ITL and throughput; not the low-load pipeline latency, which all-at-once
       runs cannot see (it is the engine policy's prior, from closed-loop runs);
  E    kernel-quality factors of SGLang and TensorRT-LLM relative to vLLM (all kernels, and
       MXFP4 MoE kernels) on throughput;
  D    crash boundary: the runtime-transient factor, set between the largest factor every
       successful run survives and the smallest that makes the runtime-OOM examples crash.

Then prints per-run errors (in-sample), leave-one-group-out cross-validation (each model x GPU
document left out in turn: refit from the priors on the others, predict it), Kendall tau of
total throughput across the configurations of each tuning section, and the crash rows'
predictions, and writes the fitted constants to ``runners/sim/calibration.py``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import statistics
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from runners.sim import _sim_rng
from runners.sim.memory import check_memory, plan_memory
from runners.sim.params import Calibration, bounds, prior_value
from runners.sim.replay import ReplayCase, load_cases, predict
from runners.sim.rules import check_config

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "runners" / "sim" / "data" / "calibration"
OUT_MODULE = ROOT / "runners" / "sim" / "calibration.py"
METRICS = ("total_token_throughput", "ttft_mean_ms", "tpot_mean_ms", "itl_mean_ms")
FAIL_LOSS = 3.0  # loss of a target row the simulator predicts as a crash
STEPS = (0.3, 0.1)  # log-space step sizes of the coordinate search, coarse then fine
MOVES_PER_STEP = 3


@dataclass(frozen=True)
class Target:
    """A measured run used as a fit target (or a crash example)."""

    row: dict[str, str]
    case: ReplayCase

    @property
    def group(self) -> str:
        return f"{self.row['model_family']}/{self.row['gpu']}"

    @property
    def engine(self) -> str:
        return self.row["engine"]

    def measured(self, metric: str) -> float | None:
        text = self.row.get(metric, "")
        return float(text) if text else None


Weights = dict[str, float]
PHYSICS: Weights = {"total_token_throughput": 2.0, "tpot_mean_ms": 1.0}
# Kernel quality is judged on throughput alone: an engine's TPOT is dominated by its scheduling
# policy (SGLang runs prefill batches ahead of decode), which stage C and the scheduler model.
KERNEL: Weights = {"total_token_throughput": 1.0}
HOST: Weights = {
    "total_token_throughput": 1.0,
    "ttft_mean_ms": 1.0,
    "tpot_mean_ms": 1.0,
    "itl_mean_ms": 0.5,
}


def row_loss(target: Target, calib: Calibration, weights: Weights) -> float:
    pred = predict(target.case, calib)
    if pred["outcome"] != "ok":
        return FAIL_LOSS
    total = norm = 0.0
    for metric, weight in weights.items():
        meas = target.measured(metric)
        value = pred.get(metric)
        if meas is None or meas <= 0 or not isinstance(value, float) or value <= 0:
            continue
        total += weight * abs(math.log(value / meas))
        norm += weight
    return total / norm if norm else 0.0


def _uses(target: Target, key: str) -> bool:
    """Does this key influence this target? (keeps each coordinate move cheap)"""
    config = target.case.config
    if config is None:
        return False
    parts = key.split(".")
    if parts[0] == "engine" and parts[-1] == "mxfp4":
        return config.engine == parts[1] and config.model.expert_weight_bits > 0
    if parts[0] == "engine" and parts[-1] == "fp8":
        return config.engine == parts[1] and config.weight_dtype == "fp8"
    if parts[0] == "engine":
        return config.engine == parts[1]
    if key == "ep_imbalance":
        return config.expert_parallel
    if parts[0] != "gpu" or config.gpu.name != ".".join(parts[1:-1]):
        return False
    name = parts[-1]
    moe = config.model.is_moe
    fp8 = config.weight_dtype == "fp8"
    quant4 = config.weight_quant in ("awq", "gptq") or config.model.expert_weight_bits > 0
    return {
        "mem_bw": True,
        "attention": True,
        "dense_bf16": not fp8 and not config.weight_quant,
        "moe_bf16": moe and not fp8 and config.model.expert_weight_bits == 0,
        "dense_fp8": fp8,
        "moe_fp8": moe and fp8,
        "w4a16": quant4,
    }.get(name, False)


def fit_stage(
    targets: Sequence[Target],
    keys: Sequence[str],
    weights: Weights,
    calib: Calibration,
    log: Callable[[str], None],
) -> Calibration:
    """Bounded coordinate search in log space; each key moves only while the loss drops."""
    keys = [k for k in keys if any(_uses(t, k) for t in targets)]
    for step in STEPS:
        for key in keys:
            rows = [t for t in targets if _uses(t, key)]
            lo, hi = bounds(key)
            value = min(hi, max(lo, calib.as_dict().get(key, prior_value(key))))

            def loss(
                v: float, rows: list[Target] = rows, key: str = key, base: Calibration = calib
            ) -> float:
                trial = base.updated({key: v})
                return sum(row_loss(t, trial, weights) for t in rows)

            best = loss(value)
            for _ in range(MOVES_PER_STEP):
                moved = False
                for direction in (1.0, -1.0):
                    cand = min(hi, max(lo, value * math.exp(direction * step)))
                    if cand == value:
                        continue
                    trial_loss = loss(cand)
                    if trial_loss < best - 1e-9:
                        value, best, moved = cand, trial_loss, True
                        break
                if not moved:
                    break
            calib = calib.updated({key: value})
            log(f"    {key:34s} = {value:.4g}  (loss {best / max(1, len(rows)):.3f}/row)")
    return calib


def _memory_crash(target: Target, calib: Calibration) -> bool:
    config = target.case.config
    if config is None:
        return target.case.crash is not None
    if check_config(config) is not None:
        return True
    plan = plan_memory(config, calib)
    return check_memory(config, plan, _sim_rng(0), calib) is not None


def fit_memory(
    ok: Sequence[Target], crashes: Sequence[Target], calib: Calibration, log: Callable[[str], None]
) -> Calibration:
    """Stage D, usable memory: per GPU, the smallest bounded scale of the catalogue's usable
    memory at which every measured successful run passes the memory checks (seed 0)."""
    gpus = sorted({t.case.config.gpu.name for t in ok if t.case.config is not None})
    for gpu in gpus:
        rows = [t for t in ok if t.case.config is not None and t.case.config.gpu.name == gpu]
        key = f"gpu.{gpu}.usable_scale"
        _, hi = bounds(key)
        scale = 1.0
        while scale < hi and any(_memory_crash(t, calib.updated({key: scale})) for t in rows):
            scale = min(hi, scale + 0.001)
        calib = calib.updated({key: scale})
        still = [t.row["run_id"] for t in rows if _memory_crash(t, calib)]
        mem_crashes = [
            t for t in crashes if t.case.config is not None and t.case.config.gpu.name == gpu
        ]
        kept = sum(_memory_crash(t, calib) for t in mem_crashes)
        log(
            f"    {key:34s} = {scale:.3f}  (ok runs still crashing: {still or 'none'}; "
            f"{kept}/{len(mem_crashes)} crash examples on this GPU still crash)"
        )
    return calib


def fit_crash_boundary(
    ok: Sequence[Target], crashes: Sequence[Target], calib: Calibration
) -> tuple[Calibration, str]:
    """Stage D, runtime: the runtime-transient factor between the pass and fail examples."""

    def threshold(target: Target) -> float | None:
        config = target.case.config
        if config is None:
            return None
        plan = plan_memory(config, calib)
        per_factor = plan.runtime_transient_gib / plan.transient_factor
        if per_factor <= 0:
            return None
        return plan.runtime_headroom_gib / per_factor

    survive = [x for x in (threshold(t) for t in ok) if x is not None and x > 0]
    die = [
        x
        for t in crashes
        if "inference" in t.row.get("error", "").lower() and "batched" in t.row["section"].lower()
        for x in [threshold(t)]
        if x is not None and x > 0
    ]
    lo_b, hi_b = bounds("runtime_transient_factor")
    upper = min(survive) if survive else hi_b
    lower = max(die) if die else lo_b
    if lower < upper:
        factor = math.sqrt(max(lower, lo_b) * min(upper, hi_b))
        note = f"between {lower:.2f} (crash examples) and {upper:.2f} (successful runs)"
    else:
        factor = min(upper, hi_b) * 0.999
        note = f"inconsistent examples ({lower:.2f} >= {upper:.2f}); kept every ok run alive"
    factor = min(hi_b, max(lo_b, factor))
    return calib.updated({"runtime_transient_factor": factor}), note


def gpu_keys(targets: Sequence[Target]) -> list[str]:
    gpus = sorted({t.case.config.gpu.name for t in targets if t.case.config is not None})
    names = ("mem_bw", "dense_bf16", "moe_bf16", "dense_fp8", "moe_fp8", "w4a16", "attention")
    return [f"gpu.{g}.{n}" for g in gpus for n in names] + ["ep_imbalance"]


def fit(
    targets: Sequence[Target], crashes: Sequence[Target], log: Callable[[str], None]
) -> tuple[Calibration, str]:
    calib = Calibration()
    log("  stage D: memory boundary (usable memory, runtime transient)")
    calib = fit_memory(targets, crashes, calib, log)
    calib, note = fit_crash_boundary(targets, crashes, calib)
    log(f"    runtime_transient_factor = {calib.scalar('runtime_transient_factor'):.3f} ({note})")
    vllm = [t for t in targets if t.engine == "vllm"]
    log("  stage A/B: GPU physics on vLLM runs (throughput x2, TPOT)")
    calib = fit_stage(vllm, gpu_keys(vllm), PHYSICS, calib, log)
    engines = sorted({t.engine for t in targets})
    log("  stage C: host costs per engine (TTFT, TPOT, ITL, throughput)")
    host = ("c_in_s", "c_in_per_worker_s", "c_out_s", "cpu_step_s")
    for engine in engines:
        rows = [t for t in targets if t.engine == engine]
        keys = [f"engine.{engine}.{k}" for k in host]
        calib = fit_stage(rows, keys, HOST, calib, log)
    log("  stage E: kernel quality of SGLang / TensorRT-LLM / MindIE vs vLLM")
    for engine in engines:
        if engine == "vllm":
            continue
        rows = [t for t in targets if t.engine == engine]
        # MXFP4 and FP8 first: they touch only the gpt-oss rows and the FP8 checkpoints, whose
        # kernels would otherwise drag the engine-wide factor.
        keys = [f"engine.{engine}.{k}" for k in ("mxfp4", "fp8", "kernel")]
        calib = fit_stage(rows, keys, KERNEL, calib, log)
    return calib, note


# --- reporting -------------------------------------------------------------------------------
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


def write_module(calib: Calibration, source: str) -> None:
    """Write `runners/sim/calibration.py` (ruff-clean: wrapped strings, double quotes)."""
    chunks = textwrap.wrap(source, width=86, drop_whitespace=False)
    lines = [
        '"""Fitted constants of the simulator (generated by scripts/calibrate_sim.py; do not '
        "edit).",
        "",
        "Read by `params.fitted_calibration()`, which overlays these values on the priors in",
        '`params`. An empty table means "priors only".',
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "SOURCE = (",
        *(f"    {json.dumps(chunk)}" for chunk in chunks),
        ")",
        "FITTED: dict[str, float] = {",
    ]
    for key, value in sorted(calib.values):
        lines.append(f"    {json.dumps(key)}: {float(f'{value:.6g}')!r},")
    lines.append("}")
    OUT_MODULE.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-write", action="store_true", help="do not write calibration.py")
    parser.add_argument("--no-cv", action="store_true", help="skip leave-one-group-out CV")
    parser.add_argument("--quiet", action="store_true", help="do not log every fitted key")
    parser.add_argument(
        "--rewrite", action="store_true", help="only rewrite calibration.py from its own values"
    )
    args = parser.parse_args(argv)
    if args.rewrite:
        from runners.sim import calibration

        write_module(Calibration(tuple(sorted(calibration.FITTED.items()))), calibration.SOURCE)
        return 0
    started = time.perf_counter()
    runs = args.data / "gpustack_runs.csv"
    digest = hashlib.sha256(runs.read_bytes()).hexdigest()[:12]
    loaded = [Target(row, case) for row, case in load_cases(runs)]
    targets = [
        t
        for t in loaded
        if t.row["calibration_use"] == "yes" and t.row["outcome"] == "ok" and not t.case.error
    ]
    crashes = [t for t in loaded if t.row["calibration_use"] == "crash_example"]
    skipped = [t for t in loaded if t.case.error and t.row["calibration_use"] == "yes"]
    print(f"{runs}: {len(loaded)} rows (sha256 {digest}); {len(targets)} metric targets, ")
    print(f"{len(crashes)} crash examples, {len(skipped)} target rows not expressible:")
    for t in skipped:
        print(
            f"  {t.row['run_id']} {t.group} {t.engine} {t.row['engine_version']}: {t.case.error}"
        )

    def log(line: str) -> None:
        if not args.quiet:
            print(line)

    print("\nFit on all groups")
    calib, note = fit(targets, crashes, log)
    preds = {t.row["run_id"]: predict(t.case, calib) for t in loaded}
    print("\nPer-run errors, in-sample (sim / measured - 1)")
    per_run_table(targets, preds)
    failed = sum(1 for t in targets if preds[t.row["run_id"]]["outcome"] != "ok")
    print()
    for line in summary_table(
        "In-sample error (fitted on these runs)", errors(targets, preds), failed
    ):
        print(line)

    cv_preds: dict[str, dict[str, str | float]] = {}
    if not args.no_cv:
        groups = sorted({t.group for t in targets})
        print(f"\nLeave-one-group-out cross-validation over {len(groups)} model x GPU groups")
        for group in groups:
            train = [t for t in targets if t.group != group]
            held = [t for t in loaded if t.group == group]
            train_crashes = [t for t in crashes if t.group != group]
            cv_calib, _ = fit(train, train_crashes, lambda _line: None)
            for t in held:
                cv_preds[t.row["run_id"]] = predict(t.case, cv_calib)
            errs = errors([t for t in targets if t.group == group], cv_preds)
            tp = errs["total_token_throughput"]
            med = 100 * statistics.median(abs(v) for v in tp) if tp else float("nan")
            print(f"  held out {group:26s} {len(tp):2d} runs, median |err| throughput {med:5.1f}%")
        cv_failed = sum(1 for t in targets if cv_preds[t.row["run_id"]]["outcome"] != "ok")
        print()
        for line in summary_table(
            "Cross-validated error (each group predicted by a fit that never saw it)",
            errors(targets, cv_preds),
            cv_failed,
        ):
            print(line)
        print("\nPer-run errors, cross-validated")
        per_run_table(targets, cv_preds)

    for label, chosen in (("in-sample", preds), ("cross-validated", cv_preds)):
        if not chosen:
            continue
        taus = section_taus(targets, chosen)
        print(f"\nKendall tau of total throughput per tuning section ({label})")
        for name, n, tau in taus:
            print(f"  {name:70s} n={n}  tau={tau:+.2f}")
        sections = [tau for name, _, tau in taus if "all ShareGPT" not in name]
        if sections:
            print(
                f"  mean over {len(sections)} sections with 3+ configs: "
                f"{statistics.mean(sections):+.2f}"
            )

    print("\nCrash rows")
    predicted_crashes = 0
    for t in crashes:
        pred = cv_preds.get(t.row["run_id"]) or preds[t.row["run_id"]]
        hit = pred["outcome"] == "crash"
        predicted_crashes += hit
        print(
            f"  {t.row['run_id']} {t.group:22s} {t.engine:6s} {t.row['model'][-22:]:22s} "
            f"{(t.row['flags_json'] + ' ' + t.row['env']).strip()[:44]:44s} measured "
            f"{t.row['error'][:30]!r} -> {pred['outcome']} {pred.get('crash_class', '')} "
            f"{str(pred.get('reason', ''))[:50]!r}"
        )
    ok_as_crash = sum(
        1 for t in targets if (cv_preds or preds)[t.row["run_id"]]["outcome"] == "crash"
    )
    print(
        f"  {predicted_crashes} of {len(crashes)} crash rows predicted as crashes; "
        f"{ok_as_crash} successful runs predicted as crashes"
    )

    plan_note = ""
    if not args.no_write:
        stamp = datetime.date.today().isoformat()
        source = (
            f"scripts/calibrate_sim.py on {stamp}: gpustack_runs.csv sha256 {digest}, "
            f"{len(targets)} targets (vLLM v0.11.0, SGLang v0.5.4-0.5.5, TRT-LLM v1.2.0rc1 where "
            f"expressible); crash boundary {note}"
        )
        write_module(calib, source)
        plan_note = f"; wrote {OUT_MODULE.relative_to(ROOT)}"
    print(f"\ndone in {time.perf_counter() - started:.0f} s{plan_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

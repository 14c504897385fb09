"""`python -m runners.sim.replay --runs RUNS.csv --out PRED.csv`: predict measured runs.

Reads benchmark rows in the schema of ``data/calibration/gpustack_runs.csv`` (model, gpu, engine,
engine_version, flags_json, env, dataset, input_len, output_len, num_prompts, request_rate,
max_concurrency), turns each row into a `Candidate` on a one-instance `NodeGroup`, resolves it
through the engine adapters (`runners.engines.resolve`: the engine's own defaults and argument
checks, never a copy of them here), simulates it, and writes one row per input with the same
metric column names plus `outcome` (ok / crash / error), `crash_class` and `reason`. A row the
tool cannot express (unknown model, GPU, engine version or flag) gets ``outcome=error`` with the
reason; the tool itself never fails on a row. `scripts/calibrate_sim.py` uses `load_cases` and
`predict` to fit and cross-validate the simulator on the same path users take.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from runners.bench.metrics import NoMetricValue, summarize
from runners.catalog import get_gpu, get_model
from runners.engines import engine_names, resolve
from runners.errors import ServingOptimizerError
from runners.sim import simulate
from runners.sim.params import Calibration
from runners.types import (
    Candidate,
    Crash,
    EngineName,
    NodeGroup,
    ServingConfig,
    SettingValue,
    WeightDtype,
    Workload,
)

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
    "kv_cache_tokens",
)


@dataclass(frozen=True)
class ReplayCase:
    """A row turned into something the simulator can run, or the reason it cannot be.

    Exactly one of `config` (resolved), `crash` (the adapter's own argument check failed) and
    `error` (the row cannot be expressed) is set.
    """

    run_id: str
    config: ServingConfig | None
    workload: Workload | None
    crash: Crash | None = None
    error: str = ""


def _number(row: Mapping[str, str], key: str) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _settings(row: Mapping[str, str]) -> dict[str, SettingValue]:
    """flags_json keys are underscore-spelled; the adapter accepts every spelling of a setting
    (``max_num_seqs`` for ``--max-num-seqs``)."""
    raw = json.loads(row.get("flags_json") or "{}")
    if not isinstance(raw, dict):
        raise ValueError(f"flags_json is not an object: {row.get('flags_json')!r}")
    settings: dict[str, SettingValue] = {}
    for key, value in raw.items():
        if not isinstance(value, bool | int | float | str):
            raise ValueError(f"flag {key!r} has a value the tool cannot express: {value!r}")
        settings[str(key)] = value
    for item in (row.get("env") or "").split():
        if "=" in item:
            # Environment settings are adapter settings named by their variable.
            name, value = item.split("=", 1)
            settings[name] = value
    # Unknown names are the adapter's call: `resolve` rejects them with its own message.
    return settings


def _workload(row: Mapping[str, str]) -> Workload:
    """The benchmark as run. Request count and mean output length are workload facts the row
    records (successful requests; outputs shorter than output_len because EOS was not ignored)."""
    dataset = (row.get("dataset") or "").strip().lower()
    prompts = int(_number(row, "num_prompts") or 0)
    succeeded = _number(row, "successful_requests")
    if succeeded:
        prompts = int(succeeded)
    rate = _number(row, "request_rate")
    concurrency = _number(row, "max_concurrency")
    common = {
        "num_prompts": prompts,
        "request_rate": math.inf if rate is None or math.isinf(rate) else rate,
        "max_concurrency": int(concurrency) if concurrency else None,
    }
    if prompts <= 0:
        raise ValueError("num_prompts is missing")
    if dataset == "sharegpt":
        return Workload(name="sharegpt", dataset="sharegpt-like", **common)  # type: ignore[arg-type]
    if dataset == "random":
        in_len, out_len = _number(row, "input_len"), _number(row, "output_len")
        if in_len is None or out_len is None:
            raise ValueError("a random-dataset row needs input_len and output_len")
        out_tokens = _number(row, "total_output_tokens")
        if out_tokens and succeeded:
            out_len = max(1.0, round(out_tokens / succeeded))
        return Workload(
            name=f"random-{int(in_len)}-{int(out_len)}",
            dataset="random",
            input_len=int(in_len),
            output_len=int(out_len),
            **common,  # type: ignore[arg-type]
        )
    raise ValueError(f"dataset {dataset!r} is not simulated (known: sharegpt, random)")


def _engine(text: str) -> EngineName:
    if text not in engine_names():
        raise ValueError(f"engine {text!r} is not one of {', '.join(engine_names())}")
    return text


def load_case(row: Mapping[str, str]) -> ReplayCase:
    """Turn one CSV row into a `ReplayCase`; never raises."""
    run_id = row.get("run_id", "")
    try:
        engine = _engine((row.get("engine") or "").strip().lower())
        checkpoint = (row.get("model") or "").strip()
        model = get_model(checkpoint)
        gpu = get_gpu((row.get("gpu") or "").strip())
        gpus = int(_number(row, "num_gpus_used") or 1)
        node_group = NodeGroup(f"{gpu.name}x{gpus}", gpu.name, gpus)
        weight: WeightDtype = "fp8" if "fp8" in checkpoint.lower() else "bf16"
        candidate = Candidate.make(
            engine,
            (row.get("engine_version") or "").strip(),
            model.name,
            checkpoint,
            weight,
            _settings(row),
        )
        workload = _workload(row)
        resolved = resolve(candidate, node_group)
    except (ServingOptimizerError, ValueError, KeyError, TypeError) as exc:
        return ReplayCase(run_id, None, None, error=f"{type(exc).__name__}: {exc}")
    if isinstance(resolved, Crash):
        return ReplayCase(run_id, None, workload, crash=resolved)
    config = resolved
    lowered = checkpoint.lower()
    if not config.weight_quant and (lowered.endswith("-awq") or "-awq-" in lowered):
        config = replace(config, weight_quant="awq")
    # One row is one engine instance: never replicate it to fill a node.
    return ReplayCase(run_id, replace(config, replicas=1), workload)


def load_cases(path: Path) -> list[tuple[dict[str, str], ReplayCase]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [(row, load_case(row)) for row in rows]


def predict(
    case: ReplayCase, calibration: Calibration | None = None, seed: int = 0
) -> dict[str, str | float]:
    """Simulated metrics of one case, in the calibration CSV's column names."""
    out: dict[str, str | float] = {"run_id": case.run_id, "crash_class": "", "reason": ""}
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
    result = simulate(case.config, case.workload, seed=seed, calibration=calibration)
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
        description="Predict benchmark rows (gpustack_runs.csv schema) with the simulator.",
    )
    parser.add_argument("--runs", type=Path, required=True, help="input CSV of measured runs")
    parser.add_argument("--out", type=Path, required=True, help="output CSV of predictions")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        cases = load_cases(args.runs)
    except OSError as exc:
        print(f"error: cannot read {args.runs}: {exc}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(OUT_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for row, case in cases:
            pred = predict(case, seed=args.seed)
            for key in ("model", "gpu", "engine", "engine_version"):
                pred[key] = row.get(key, "")
            writer.writerow({col: _format(pred.get(col)) for col in OUT_COLUMNS})
            outcome = str(pred["outcome"])
            counts[outcome] = counts.get(outcome, 0) + 1
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    print(f"wrote {len(cases)} predictions to {args.out} ({summary})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

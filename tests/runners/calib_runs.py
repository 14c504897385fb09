"""Measured runs made to order for the calibration tests: configurations served by an engine
that behaves as a known truth profile (simulated with the profile's calibration)."""

from __future__ import annotations

import math

from runners.bench.metrics import summarize
from runners.engines import resolve
from runners.sim import simulate
from runners.sim.fit import Observation, engine_calibration
from runners.sim.profile import EngineScales
from runners.types import Candidate, NodeGroup, ServingConfig, Workload

NODE = NodeGroup("h100", "H100-SXM-80GB", 8)
VERSIONS = {"vllm": "0.33.0", "sglang": "0.5.23"}


def config(engine: str = "vllm", **settings: int | float | str | bool) -> ServingConfig:
    candidate = Candidate.make(
        engine, VERSIONS[engine], "Qwen3-8B", "Qwen/Qwen3-8B", "bf16", settings
    )
    resolved = resolve(candidate, NODE)
    assert isinstance(resolved, ServingConfig), resolved
    return resolved


def workload(
    input_len: int = 1024,
    output_len: int = 128,
    prompts: int = 120,
    rate: float = math.inf,
    concurrency: int | None = None,
) -> Workload:
    return Workload(
        name=f"random-{input_len}-{output_len}",
        dataset="random",
        input_len=input_len,
        output_len=output_len,
        num_prompts=prompts,
        request_rate=rate,
        max_concurrency=concurrency,
    )


def measured(cfg: ServingConfig, load: Workload, truth: EngineScales, label: str) -> Observation:
    """What an engine behaving as `truth` measures for `cfg` under `load`."""
    calib = engine_calibration(cfg.engine, cfg.gpu.name, truth, None)
    result = simulate(cfg, load, calibration=calib)
    metrics = None
    if result.records is not None:
        metrics = summarize(result.records, num_gpus=cfg.gpus_per_replica)
    return Observation(cfg, load, metrics, label)


def varied_runs(truth: EngineScales, engine: str = "vllm", count: int = 5) -> list[Observation]:
    """`count` runs of differing shape: prefill-heavy, decode-heavy, low and high load."""
    shapes = [
        (config(engine), workload(2048, 64)),
        (config(engine), workload(256, 512)),
        (config(engine, max_num_seqs=16), workload(512, 256, concurrency=8)),
        (config(engine, max_num_batched_tokens=4096), workload(1024, 128, rate=4.0)),
        (config(engine, max_num_seqs=64), workload(1024, 256)),
        (config(engine), workload(128, 128, concurrency=2)),
    ]
    return [
        measured(c, w, truth, f"runs.csv row {i + 1}") for i, (c, w) in enumerate(shapes[:count])
    ]


SHAPES: tuple[tuple[str, dict[str, str]], ...] = (
    ("", {"input_len": "2048", "output_len": "64"}),
    ("", {"input_len": "256", "output_len": "512"}),
    ("--max-num-seqs 16", {"input_len": "512", "output_len": "256", "max_concurrency": "8"}),
    (
        "--max-num-batched-tokens 4096",
        {"input_len": "1024", "output_len": "128", "request_rate": "4"},
    ),
)


def bench_rows(truth: EngineScales, count: int = 3) -> list[dict[str, str]]:
    """Rows of the calibration CSV schema (serve command form) that an engine behaving as
    `truth` measured: each row goes through the replay path and is simulated with the truth."""
    from runners.sim.replay import METRIC_COLUMNS
    from runners.sim.replay_rows import load_case

    rows = []
    for index, (flags, shape) in enumerate(SHAPES[:count]):
        row = {
            "run_id": f"run-{index + 1}",
            "model": "Qwen/Qwen3-8B",
            "gpu": "H100-SXM-80GB",
            "engine": "vllm",
            "engine_version": VERSIONS["vllm"],
            "serve_command": f"vllm serve Qwen/Qwen3-8B {flags}".strip(),
            "num_gpus_used": "1",
            "dataset": "random",
            "num_prompts": "120",
            "request_rate": "inf",
            "max_concurrency": "",
            "outcome": "ok",
            **shape,
        }
        case = load_case(row)
        assert case.config is not None and case.workload is not None, case.error
        observed = measured(case.config, case.workload, truth, row["run_id"])
        assert observed.metrics is not None
        flat = observed.metrics.flat()
        names = {
            "duration_s": "duration_s",
            "successful_requests": "completed",
            "total_input_tokens": "total_input_tokens",
            "total_output_tokens": "total_output_tokens",
            "request_throughput": "request_throughput_req_s",
            "output_throughput": "output_throughput_tok_s",
            "total_token_throughput": "total_token_throughput_tok_s",
        }
        for column in METRIC_COLUMNS:
            if column in names:
                row[column] = repr(flat[names[column]])
            else:
                metric, stat, _ = column.split("_")
                row[column] = repr(flat[f"{stat}_{metric}_ms"])
        rows.append(row)
    return rows


def bench_json(row: dict[str, str]) -> dict[str, object]:
    """`row` as `vllm bench serve --save-result` writes it, with the metadata the calibration
    needs (serve command, GPU, data set) as `--metadata` adds it."""
    out: dict[str, object] = {
        "date": "20261206-120000",
        "backend": "vllm",
        "model_id": row["model"],
        "tokenizer_id": row["model"],
        "num_prompts": int(row["num_prompts"]),
        "request_rate": row["request_rate"],
        "burstiness": 1.0,
        "max_concurrency": int(row["max_concurrency"]) if row.get("max_concurrency") else None,
        "duration": float(row["duration_s"]),
        "completed": int(float(row["successful_requests"])),
        "total_input_tokens": int(float(row["total_input_tokens"])),
        "total_output_tokens": int(float(row["total_output_tokens"])),
        "request_throughput": float(row["request_throughput"]),
        "output_throughput": float(row["output_throughput"]),
        "total_token_throughput": float(row["total_token_throughput"]),
        "serve_command": row["serve_command"],
        "gpu": row["gpu"],
        "engine_version": row["engine_version"],
        "dataset": row["dataset"],
        "input_len": row["input_len"],
        "output_len": row["output_len"],
    }
    for name in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "p99"):
            out[f"{stat}_{name}_ms"] = float(row[f"{name}_{stat}_ms"])
    return out

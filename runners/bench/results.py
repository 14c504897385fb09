"""Benchmark result files in the format of `vllm bench serve --save-result`, both ways.

Last stage of a real benchmark: `to_vllm_json` turns a `BenchResult` and its `Metrics` (from
`summarize`) into the same keys `vllm bench serve` 0.33 writes (with
``--percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,95,99`` and
``--save-detailed``); `save_result` writes it. `metrics_from_vllm_json` reads such a file,
ours or one written by `vllm bench serve` itself, back into `Metrics`: that is the alternative
benchmark backend (run vLLM's own client, read its file). The JSON is the edge of the system,
so it is validated with pydantic on the way in.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from runners.bench.loadgen import BenchResult
from runners.bench.metrics import peak_output_rate, request_goodput
from runners.errors import ResultFileError
from runners.types import Distribution, LatencyMetric, Metrics

PERCENTILES = (50, 90, 95, 99)
METRICS: tuple[LatencyMetric, ...] = ("ttft", "tpot", "itl", "e2el")


def aggregate_fields(metrics: Metrics) -> dict[str, object]:
    """The aggregate keys of a `vllm bench serve` result: counts, throughputs, and mean,
    median, std and percentiles of each latency metric in ms (no per-request arrays)."""
    fields: dict[str, object] = {
        "duration": metrics.duration_s,
        "completed": metrics.completed,
        "failed": metrics.failed,
        "total_input_tokens": metrics.total_input_tokens,
        "total_output_tokens": metrics.total_output_tokens,
        "request_throughput": metrics.request_throughput_req_s,
        "output_throughput": metrics.output_throughput_tok_s,
        "total_token_throughput": metrics.total_token_throughput_tok_s,
    }
    for name in METRICS:
        dist = metrics.latency(name)
        fields[f"mean_{name}_ms"] = dist.mean
        fields[f"median_{name}_ms"] = dist.median
        fields[f"std_{name}_ms"] = dist.std
        for p in PERCENTILES:
            fields[f"p{p}_{name}_ms"] = dist.percentile(p)
    return fields


def to_vllm_json(
    result: BenchResult,
    metrics: Metrics,
    model_id: str,
    backend: str = "openai",
    endpoint_type: str = "openai",
    goodput_slo_ms: dict[str, float] | None = None,
) -> dict[str, object]:
    """The `vllm bench serve --save-result --save-detailed` document for this run."""
    records = result.records()
    token_times = [
        np.cumsum(np.array([r.start_s, r.ttft_s, *r.itl_s], dtype=np.float64))
        for r in result.results
        if r.success
    ]
    peak_tokens, peak_requests = peak_output_rate(token_times)
    rate: float | str = "inf" if math.isinf(result.request_rate) else result.request_rate
    doc: dict[str, object] = {
        "date": time.strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": endpoint_type,
        "backend": backend,
        "label": None,
        "model_id": model_id,
        "tokenizer_id": model_id,
        "num_prompts": len(result.results),
        "request_rate": rate,
        "burstiness": result.burstiness,
        "max_concurrency": result.max_concurrency,
        **aggregate_fields(metrics),
        "request_goodput": (
            request_goodput(records, goodput_slo_ms) if goodput_slo_ms is not None else None
        ),
        "max_output_tokens_per_s": peak_tokens,
        "max_concurrent_requests": peak_requests,
        "latencies": [r.latency_s for r in result.results],
    }
    doc["input_lens"] = [r.prompt_len for r in result.results]
    doc["output_lens"] = [r.output_len for r in result.results]
    doc["start_times"] = [r.start_s for r in result.results]
    if result.intended_s:  # the send log: when each request was due (NaN: never sent)
        doc["intended_start_times"] = [None if math.isnan(t) else t for t in result.intended_s]
    doc["ttfts"] = [r.ttft_s for r in result.results]
    doc["itls"] = [list(r.itl_s) for r in result.results]
    doc["errors"] = [r.error for r in result.results]
    return doc


def save_result(path: Path, document: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1))
    return path


class _VllmResult(BaseModel):
    """The keys of a `vllm bench serve` result file that `Metrics` needs (others ignored)."""

    model_config = ConfigDict(extra="allow")

    duration: float
    completed: int
    failed: int = 0
    num_prompts: int
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float


def _dist(doc: dict[str, object], name: str) -> Distribution:
    def get(key: str) -> float:
        value = doc.get(key)
        if not isinstance(value, int | float):
            raise ResultFileError(
                f"key {key!r} is missing; run vllm bench serve with --percentile-metrics "
                "ttft,tpot,itl,e2el --metric-percentiles 50,90,95,99"
            )
        return float(value)

    return Distribution(
        mean=get(f"mean_{name}_ms"),
        median=get(f"median_{name}_ms"),
        std=get(f"std_{name}_ms"),
        p90=get(f"p90_{name}_ms"),
        p95=get(f"p95_{name}_ms"),
        p99=get(f"p99_{name}_ms"),
    )


def metrics_from_vllm_json(path: Path, num_gpus: int) -> Metrics:
    """Read a `--save-result` file (vLLM's or ours) as `Metrics`."""
    try:
        text = path.read_text().strip().splitlines()[-1]  # --append-result writes JSON lines
        raw = json.loads(text) if text.startswith("{") else json.loads(path.read_text())
        head = _VllmResult.model_validate(raw)
    except (OSError, IndexError, json.JSONDecodeError, ValidationError) as exc:
        raise ResultFileError(f"{path}: not a vllm bench serve result file: {exc}") from exc
    failed = head.failed or max(0, head.num_prompts - head.completed)
    return Metrics(
        completed=head.completed,
        failed=failed,
        duration_s=head.duration,
        total_input_tokens=head.total_input_tokens,
        total_output_tokens=head.total_output_tokens,
        request_throughput_req_s=head.request_throughput,
        output_throughput_tok_s=head.output_throughput,
        total_token_throughput_tok_s=head.total_token_throughput,
        num_gpus=num_gpus,
        ttft_ms=_dist(raw, "ttft"),
        tpot_ms=_dist(raw, "tpot"),
        itl_ms=_dist(raw, "itl"),
        e2el_ms=_dist(raw, "e2el"),
    )

"""Turn raw request records into `Metrics`, with the formulas of `vllm bench serve` (0.33).

This is the one place metric math happens, for simulated and real runs alike:

- TTFT: first content chunk minus request send time.
- TPOT per request: ``(e2el - ttft) / (output_len - 1)``, only for requests with more than one
  output token.
- ITL: all inter-chunk gaps of successful requests, pooled (given as values with counts by the
  simulator: `pooled.counted_distribution_ms`).
- E2EL: last content chunk minus request send time.
- Throughputs: tokens (or requests) of successful requests divided by the run's duration.
- Statistics: mean, median, population std, and linearly interpolated percentiles
  (``np.percentile``) over successful requests; all latencies in milliseconds.

A run with no successful request has no metrics: `NoMetricValue` is raised rather than
reporting zeros, which would read as the best possible latency.
"""

from __future__ import annotations

import numpy as np

from runners.bench.pooled import counted_distribution_ms
from runners.bench.records import FloatArray, RequestRecords
from runners.errors import NoMetricValue
from runners.types import Distribution, Metrics


def distribution_ms(values_s: FloatArray) -> Distribution:
    """Summarize values given in seconds as a millisecond `Distribution`."""
    if len(values_s) == 0:
        return Distribution(mean=0.0, median=0.0, std=0.0, p90=0.0, p95=0.0, p99=0.0)
    ms = values_s * 1000.0
    mean = float(np.mean(ms))
    std = float(np.std(ms))
    # `ms` is our own copy: partition it in place (a pooled ITL array can hold tens of millions
    # of values); the mean and std above were taken in the original order
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99], overwrite_input=True)
    return Distribution(
        mean=mean,
        median=float(p50),
        std=std,
        p90=float(p90),
        p95=float(p95),
        p99=float(p99),
    )


def summarize(records: RequestRecords, num_gpus: int) -> Metrics:
    """Compute `Metrics` from the records of one run served by `num_gpus` GPUs."""
    ok = records.success
    completed = int(np.count_nonzero(ok))
    if completed == 0:
        raise NoMetricValue(
            f"none of the {records.num_requests} requests succeeded; there is nothing to measure"
        )
    if records.duration_s <= 0:
        raise NoMetricValue(f"the run's duration is {records.duration_s} s; expected > 0")
    prompt = records.prompt_len[ok]
    output = records.output_len[ok]
    ttft = records.ttft_s[ok]
    e2el = records.e2el_s[ok]
    multi = output > 1
    tpot = (e2el[multi] - ttft[multi]) / (output[multi] - 1)
    total_in = int(prompt.sum())
    total_out = int(output.sum())
    duration = records.duration_s
    return Metrics(
        completed=completed,
        failed=records.num_requests - completed,
        duration_s=duration,
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        request_throughput_req_s=completed / duration,
        output_throughput_tok_s=total_out / duration,
        total_token_throughput_tok_s=(total_in + total_out) / duration,
        num_gpus=num_gpus,
        ttft_ms=distribution_ms(ttft),
        tpot_ms=distribution_ms(tpot.astype(np.float64)),
        itl_ms=(
            distribution_ms(records.itl_s)
            if records.itl_count is None
            else counted_distribution_ms(records.itl_s, records.itl_count)
        ),
        e2el_ms=distribution_ms(e2el),
    )


GOODPUT_KEYS = ("ttft", "tpot", "e2el")


def request_goodput(records: RequestRecords, slo_ms: dict[str, float]) -> float:
    """Successful requests meeting every SLO (``ttft``/``tpot``/``e2el`` in ms) per second.

    As `vllm bench serve --goodput`: a request with at most one output token has TPOT 0.
    """
    unknown = set(slo_ms) - set(GOODPUT_KEYS)
    if unknown:
        raise ValueError(f"unknown goodput keys {sorted(unknown)}; valid: {list(GOODPUT_KEYS)}")
    if records.duration_s <= 0:
        raise NoMetricValue(f"the run's duration is {records.duration_s} s; expected > 0")
    ok = records.success
    ttft_ms = records.ttft_s * 1000.0
    e2el_ms = records.e2el_s * 1000.0
    steps = np.maximum(records.output_len - 1, 1)
    tpot_ms = np.where(records.output_len > 1, (e2el_ms - ttft_ms) / steps, 0.0)
    good = ok.copy()
    for key, limit in slo_ms.items():
        values = {"ttft": ttft_ms, "tpot": tpot_ms, "e2el": e2el_ms}[key]
        good &= values <= limit
    return int(np.count_nonzero(good)) / records.duration_s


def peak_output_rate(token_times_s: list[FloatArray]) -> tuple[float, float]:
    """(max output tokens in any 1-s bucket, max requests in flight in any 1-s bucket).

    `token_times_s` holds, per successful request, its start time followed by the arrival time
    of every content chunk (start + TTFT + cumulative ITLs), as `vllm bench serve` reconstructs.
    """
    if not token_times_s:
        return 0.0, 0.0
    end = max(float(t[-1]) for t in token_times_s)
    buckets = int(end) + 1
    tokens = np.zeros(buckets)
    active = np.zeros(buckets)
    for times in token_times_s:
        np.add.at(tokens, (times[1:]).astype(np.int64), 1.0)
        active[int(times[0]) : int(times[-1]) + 1] += 1.0
    return float(tokens.max()), float(active.max())


__all__ = [
    "GOODPUT_KEYS",
    "NoMetricValue",
    "distribution_ms",
    "peak_output_rate",
    "request_goodput",
    "summarize",
]

"""`summarize` against hand-computed values of the vllm bench serve formulas."""

from __future__ import annotations

import numpy as np
import pytest

from runners.bench import RequestRecords, summarize
from runners.errors import NoMetricValue


def records(success: list[bool]) -> RequestRecords:
    n = len(success)
    return RequestRecords(
        prompt_len=np.array([100, 200, 300][:n], dtype=np.int64),
        output_len=np.array([11, 1, 21][:n], dtype=np.int64),
        success=np.array(success, dtype=np.bool_),
        start_s=np.zeros(n),
        ttft_s=np.array([0.5, 0.2, 1.0][:n]),
        e2el_s=np.array([1.5, 0.2, 3.0][:n]),
        itl_s=np.array([0.1] * 10 + [0.1] * 20),
        duration_s=4.0,
    )


def test_throughputs_count_successful_requests_over_duration() -> None:
    metrics = summarize(records([True, True, False]), num_gpus=8)
    assert metrics.completed == 2 and metrics.failed == 1
    assert metrics.total_output_tokens == 12
    assert metrics.output_throughput_tok_s == pytest.approx(12 / 4.0)
    assert metrics.total_token_throughput_tok_s == pytest.approx((300 + 12) / 4.0)
    assert metrics.request_throughput_req_s == pytest.approx(0.5)
    assert metrics.num_gpus == 8


def test_tpot_excludes_single_token_requests() -> None:
    metrics = summarize(records([True, True, True]), num_gpus=1)
    # request 0: (1.5-0.5)/10 = 100 ms; request 1 has one token (excluded); request 2: 2.0/20
    assert metrics.tpot_ms.mean == pytest.approx(100.0)
    assert metrics.tpot_ms.p99 == pytest.approx(100.0)


def test_percentiles_interpolate_linearly_like_numpy() -> None:
    metrics = summarize(records([True, True, True]), num_gpus=1)
    ttft = np.array([500.0, 200.0, 1000.0])
    assert metrics.ttft_ms.p99 == pytest.approx(float(np.percentile(ttft, 99)))
    assert metrics.ttft_ms.median == pytest.approx(500.0)
    assert metrics.ttft_ms.std == pytest.approx(float(np.std(ttft)))
    assert metrics.e2el_ms.mean == pytest.approx((1500 + 200 + 3000) / 3)


def test_no_successful_request_is_an_error_not_zero_latency() -> None:
    with pytest.raises(NoMetricValue, match="none of the 3 requests succeeded"):
        summarize(records([False, False, False]), num_gpus=1)


def test_flat_uses_vllm_bench_json_keys() -> None:
    flat = summarize(records([True, True, True]), num_gpus=1).flat()
    for key in ("p99_ttft_ms", "mean_tpot_ms", "median_itl_ms", "p99_e2el_ms", "duration_s"):
        assert key in flat

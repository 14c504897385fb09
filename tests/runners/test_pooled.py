"""ITL values given with counts (`RequestRecords.itl_count`) summarize as their expansion."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runners.bench import RequestRecords, summarize
from runners.bench.metrics import distribution_ms
from runners.bench.pooled import counted_distribution_ms


def records(itl_s: np.ndarray, itl_count: np.ndarray | None) -> RequestRecords:
    return RequestRecords(
        prompt_len=np.array([100, 200], dtype=np.int64),
        output_len=np.array([11, 21], dtype=np.int64),
        success=np.ones(2, dtype=np.bool_),
        start_s=np.zeros(2),
        ttft_s=np.array([0.5, 1.0]),
        e2el_s=np.array([1.5, 3.0]),
        itl_s=itl_s,
        duration_s=4.0,
        itl_count=itl_count,
    )


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_counted_values_summarize_as_their_expansion(size: int) -> None:
    rng = np.random.default_rng(size)
    values = rng.random(size) * 0.05
    values[size // 2] = values[0]  # a repeated value
    counts = rng.integers(1, 90, size)
    counted = counted_distribution_ms(values, counts)
    expanded = distribution_ms(np.repeat(values, counts))
    for name in ("median", "p90", "p95", "p99"):  # the same order statistics, interpolated alike
        assert getattr(counted, name) == getattr(expanded, name)
    assert counted.mean == pytest.approx(expanded.mean, rel=1e-12)
    assert counted.std == pytest.approx(expanded.std, rel=1e-9, abs=1e-9)


def test_summarize_reads_the_counts() -> None:
    values = np.array([0.02, 0.05, 0.01])
    counts = np.array([10, 1, 19])
    with_counts = summarize(records(values, counts), num_gpus=1).itl_ms
    expanded = summarize(records(np.repeat(values, counts), None), num_gpus=1).itl_ms
    assert with_counts.p99 == expanded.p99 and with_counts.median == expanded.median == 10.0
    assert with_counts.mean == pytest.approx(expanded.mean)


def test_merged_records_keep_every_gap() -> None:
    counted = records(np.array([0.02, 0.03]), np.array([4, 2]))
    plain = records(np.array([0.01, 0.04]), None)
    merged = RequestRecords.concat([plain, counted])
    assert merged.itl_gaps().tolist() == [0.01, 0.04] + [0.02] * 4 + [0.03] * 2
    assert RequestRecords.concat([plain, plain]).itl_count is None
    with pytest.raises(ValueError, match="itl_count"):
        dataclasses.replace(counted, itl_count=np.array([1]))

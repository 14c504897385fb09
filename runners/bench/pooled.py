"""Statistics of a pooled sample given as distinct values with counts.

Place in the data flow: `metrics.summarize` calls `counted_distribution_ms` for
`RequestRecords.itl_s` when `itl_count` is set (the simulator pools the gaps of a decode
batch's requests, which are equal, as one value with a count: tens of millions of gaps on a
100k-request trace). The results are `metrics.distribution_ms` of the expanded sample: the
percentiles exactly (NumPy's linear method on the same order statistics), the mean and the
population std up to summation order.
"""

from __future__ import annotations

import numpy as np

from runners.bench.records import FloatArray, IntArray
from runners.types import Distribution

PERCENTILES = np.array([50.0, 90.0, 95.0, 99.0])


def counted_distribution_ms(values_s: FloatArray, counts: IntArray) -> Distribution:
    """`distribution_ms` of `values_s` with value i repeated `counts[i]` times."""
    n = int(counts.sum())
    if n == 0:
        return Distribution(mean=0.0, median=0.0, std=0.0, p90=0.0, p95=0.0, p99=0.0)
    ms = values_s * 1000.0
    weights = counts.astype(np.float64)
    mean = float(np.dot(ms, weights)) / n
    dev = ms - mean
    std = float(np.sqrt(np.dot(dev * dev, weights) / n))
    order = np.argsort(ms, kind="stable")
    sorted_ms = ms[order]
    ends = np.cumsum(counts[order])  # order statistics 0..ends[i]-1 are <= sorted_ms[i]
    # np.percentile's linear method: the order statistics around (n - 1) * q, interpolated
    virtual = (n - 1) * (PERCENTILES / 100.0)
    previous = np.floor(virtual)
    gamma = virtual - previous
    below = previous.astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    a = sorted_ms[np.searchsorted(ends, below, side="right")]
    b = sorted_ms[np.searchsorted(ends, above, side="right")]
    diff = b - a
    lerp = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    p50, p90, p95, p99 = lerp.tolist()
    return Distribution(mean=mean, median=p50, std=std, p90=p90, p95=p95, p99=p99)

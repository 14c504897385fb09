"""Request generation and the API-server model of the simulator."""

from __future__ import annotations

import math

import numpy as np

from runners.sim.frontend import Ingestion, OutputStream
from runners.types import Workload
from runners.workload import make_requests


def test_sharegpt_like_lengths_follow_the_bench_filter_and_means() -> None:
    req = make_requests(Workload("s", "sharegpt-like", 5000, seed=0))
    assert req.prompt_len.min() >= 4 and req.output_len.min() >= 4
    assert req.prompt_len.max() <= 1024
    assert (req.prompt_len + req.output_len).max() <= 2048
    assert 195 < req.prompt_len.mean() < 240
    assert 180 < req.output_len.mean() < 225


def test_lengths_are_seeded() -> None:
    a = make_requests(Workload("s", "sharegpt-like", 100, seed=1))
    b = make_requests(Workload("s", "sharegpt-like", 100, seed=1))
    c = make_requests(Workload("s", "sharegpt-like", 100, seed=2))
    np.testing.assert_array_equal(a.prompt_len, b.prompt_len)
    assert not np.array_equal(a.prompt_len, c.prompt_len)


def test_random_dataset_and_arrivals() -> None:
    req = make_requests(Workload("r", "random", 10, input_len=128, output_len=4))
    assert set(req.prompt_len.tolist()) == {128} and set(req.output_len.tolist()) == {4}
    assert (req.send_s == 0).all()
    poisson = make_requests(Workload("p", "random", 2000, 128, 4, request_rate=10.0))
    gaps = np.diff(poisson.send_s)
    assert math.isclose(float(gaps.mean()), 0.1, rel_tol=0.1)


def test_processor_sharing_burst_matches_closed_form() -> None:
    sizes = [0.5, 0.1, 0.3, 0.2]
    ps = Ingestion(speedup=1.0)
    done: list[tuple[float, int]] = []
    for rid, size in enumerate(sizes):
        ps.add(0.0, size, rid, done)
    ps.advance(10.0, done)
    ordered = sorted(sizes)
    n = len(ordered)
    expected = [sum(ordered[: k + 1]) + (n - k - 1) * ordered[k] for k in range(n)]
    assert [rid for _, rid in done] == [1, 3, 2, 0]
    np.testing.assert_allclose([t for t, _ in done], expected)


def test_output_stream_serializes_tokens() -> None:
    stream = OutputStream(speedup=1.0, c_out_s=15.9e-6)
    ends = np.array([0.010, 0.011, 0.030])
    runs = stream.deliver_run(ends, n_tokens=1000)
    one = OutputStream(speedup=1.0, c_out_s=15.9e-6)
    singles = [one.deliver(float(e), 1000) for e in ends]
    np.testing.assert_allclose(runs, singles)
    assert runs[1] > ends[1]


def test_delivery_gaps_are_the_gaps_of_single_deliveries() -> None:
    """`deliver_gaps` gives exactly the floats of one `deliver` per step, whether every step
    ends after the previous tokens left (its stage-at-a-time path) or tokens queue behind
    earlier ones (the step-by-step loop), and leaves the stream where the singles do."""
    rng = np.random.default_rng(5)
    spread = np.cumsum(rng.uniform(0.02, 0.05, 40)).tolist()  # steps far apart: no queueing
    crowded = np.cumsum(rng.uniform(0.0, 0.002, 40)).tolist()  # tokens queue: the loop
    late_start = [0.0005, *spread]  # the first step ends before the stream is free
    for ends in (spread, crowded, late_start, []):
        gapped, single = OutputStream(1.0, 15.9e-6), OutputStream(1.0, 15.9e-6)
        gapped.deliver(0.001, 64)
        first = single.deliver(0.001, 64)
        gaps = gapped.deliver_gaps(ends, 64, first)
        times = [single.deliver(end, 64) for end in ends]
        assert gaps == [d - prev for d, prev in zip(times, [first, *times], strict=False)]
        assert gapped.free_s == single.free_s

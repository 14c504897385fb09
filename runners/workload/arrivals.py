"""When each request may be sent: open-loop arrival times of a workload.

Second stage of `make_requests`. A workload's seed gives two independent random streams, one
for lengths and one for arrivals, so changing the rate never changes the lengths. Finite-rate
arrivals are gamma-distributed gaps with shape `burstiness` and mean 1/rate (1 = Poisson; below
1 burstier, above 1 more regular), as in `vllm bench serve --burstiness`; an infinite rate sends
every request at t=0. Closed-loop limits (`max_concurrency`) and multi-turn sessions only delay
requests further; the client applies them.
"""

from __future__ import annotations

import math

import numpy as np

from runners.types import Workload
from runners.workload.arrays import FloatArray


def workload_streams(workload: Workload) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent (lengths, arrivals) generators from the workload seed."""
    lengths_seq, arrivals_seq = np.random.SeedSequence(workload.seed).spawn(2)
    return np.random.Generator(np.random.PCG64(lengths_seq)), np.random.Generator(
        np.random.PCG64(arrivals_seq)
    )


def send_times(workload: Workload, rng: np.random.Generator) -> FloatArray:
    """Earliest send time per request: 0 for rate inf, else gamma gaps of shape `burstiness`
    and mean 1/rate (burstiness 1 = Poisson; < 1 burstier, > 1 more regular)."""
    n = workload.num_prompts
    if math.isinf(workload.request_rate):
        return np.zeros(n, dtype=np.float64)
    shape = max(workload.burstiness, 1e-3)
    gaps = rng.gamma(shape, 1.0 / (workload.request_rate * shape), n)
    gaps[0] = 0.0
    return np.cumsum(gaps)

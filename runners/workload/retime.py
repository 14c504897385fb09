"""One request list at another load: the same requests re-timed to a mean rate, or capped.

Where it sits: a load search (`runners.load_search`) measures one workload at several loads;
each load is a `Workload` whose request list (`runners.workload.make_requests`) holds the same
requests (lengths, prefixes, sessions) as the original, sent at other times. A synthetic
source or a file without timestamps draws its send times from the workload's own arrivals
stream, which is independent of the lengths, so changing `request_rate` re-times the same list
(a finite rate keeps the gaps' shape and scales them); a trace with timestamps keeps its own
pattern, scaled through `time_scale` to the new mean rate (0 sends it all at once). A
concurrency load only sets the client's `max_concurrency`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from runners.types import LoadKnob, Workload
from runners.workload.requests import RequestSet
from runners.workload.sources import SYNTHETIC_DATASETS, make_requests


def at_load(workload: Workload, knob: LoadKnob, load: float) -> Workload:
    """`workload` at `load` of `knob` (``math.inf``: unbounded)."""
    if knob == "max_concurrency":
        limit = None if math.isinf(load) else max(1, int(load))
        return dataclasses.replace(workload, max_concurrency=limit)
    return at_rate(workload, load)


def at_rate(workload: Workload, rate: float) -> Workload:
    """The same requests sent at a mean of `rate` per second (``math.inf``: all at once)."""
    if not has_timestamps(workload):
        return dataclasses.replace(workload, request_rate=rate)
    if math.isinf(rate):
        return dataclasses.replace(workload, time_scale=0.0)
    natural = mean_rate(make_requests(workload))
    return dataclasses.replace(workload, time_scale=workload.time_scale * natural / rate)


def has_timestamps(workload: Workload) -> bool:
    """Does the list keep a file's own send times (a trace replayed at its timestamps)?"""
    if workload.dataset in SYNTHETIC_DATASETS or not math.isinf(workload.request_rate):
        return False
    return bool(np.ptp(make_requests(workload).send_s) > 0) or workload.time_scale == 0.0


def mean_rate(requests: RequestSet) -> float:
    """Requests per second from the first send time to the last (inf when all at once)."""
    span = float(np.ptp(requests.send_s)) if requests.size else 0.0
    return math.inf if span <= 0 else (requests.size - 1) / span

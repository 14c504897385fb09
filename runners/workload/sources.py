"""`make_requests(workload) -> RequestSet`: the one entry to a workload's request list.

Where it sits: the simulator (`runners.sim.simulate`), the real trial (`runners.measure`) and
the space file's checks (`optimizer.spec.checks`) all call `make_requests`, so they replay the
same list. Synthetic workloads (``sharegpt-like``, ``random``) are drawn by
`runners.workload.requests`; file workloads are read by their format's entry point
(`FORMATS`: ShareGPT JSON, JSONL, CSV, Mooncake and Azure traces), which raises nothing but
`DatasetError`, and turned into a list by `runners.workload.rows.to_requests`. A file's list is
cached per workload and file version (size and modification time), so the trials of a study
read a long trace once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from runners.errors import DatasetError
from runners.types import Workload
from runners.workload.requests import RequestSet, synthetic_requests
from runners.workload.rows import Rows, to_requests
from runners.workload.sharegpt import read_sharegpt
from runners.workload.table import read_csv, read_jsonl
from runners.workload.tokens import TokenCounter
from runners.workload.traces import read_azure, read_mooncake

SYNTHETIC_DATASETS = ("sharegpt-like", "random")
FormatReader = Callable[[Path, Workload], Rows]


def _with_counter(
    read: Callable[[Path, Workload, TokenCounter], Rows],
) -> FormatReader:
    return lambda path, workload: read(path, workload, TokenCounter(workload.tokenizer))


FORMATS: dict[str, FormatReader] = {
    "sharegpt": _with_counter(read_sharegpt),
    "jsonl": _with_counter(read_jsonl),
    "csv": _with_counter(read_csv),
    "mooncake": read_mooncake,
    "azure": read_azure,
}
"""Each file format's one entry point: (path, workload) -> the rows the workload replays."""


def make_requests(workload: Workload) -> RequestSet:
    """All requests of the workload in send order (a `DatasetError` when they cannot be had)."""
    workload = workload.alone()  # a load search or further workloads change nothing here
    if workload.dataset in SYNTHETIC_DATASETS:
        return synthetic_requests(workload)
    read = FORMATS.get(workload.dataset)
    if read is None:
        known = ", ".join((*SYNTHETIC_DATASETS, *FORMATS))
        raise DatasetError(
            f"workload {workload.name!r}: unknown dataset {workload.dataset!r} (known: {known})"
        )
    if not workload.path:
        raise DatasetError(f"workload {workload.name!r}: dataset {workload.dataset} needs a path")
    path = Path(workload.path)
    try:
        info = path.stat()
        version = (info.st_size, info.st_mtime_ns)
    except OSError:
        version = (-1, -1)  # the reader reports it
    return _file_requests(workload, version)


@lru_cache(maxsize=8)
def _file_requests(workload: Workload, version: tuple[int, int]) -> RequestSet:
    del version  # part of the cache key only
    requests = to_requests(workload, FORMATS[workload.dataset](Path(workload.path), workload))
    for array in (requests.request_id, requests.prompt_len, requests.output_len, requests.send_s):
        array.flags.writeable = False  # shared by every caller of the cache
    if requests.parent is not None:
        requests.parent.flags.writeable = False
    return requests


def describe_requests(requests: RequestSet) -> str:
    """One line about a request list: size, mean lengths, span, sessions and shared prefixes."""
    span = float(np.max(requests.send_s)) if requests.size else 0.0
    parts = [
        f"{requests.size:,} requests",
        f"mean {float(np.mean(requests.prompt_len)):,.0f} in / "
        f"{float(np.mean(requests.output_len)):,.0f} out tokens",
        f"sent over {span:,.1f} s" if span > 0 else "sent at once",
    ]
    if requests.parent is not None:
        parts.append(f"{int(np.sum(requests.parent >= 0)):,} later turns of sessions")
    if requests.chains is not None:
        shared = _shared_fraction(requests)
        parts.append(f"{shared:.0%} of prompt tokens in shared prefixes")
    return ", ".join(parts)


def _shared_fraction(requests: RequestSet) -> float:
    """Share of prompt tokens a perfect prefix cache could reuse (segments seen before)."""
    chains = requests.chains
    assert chains is not None
    seen = np.zeros(chains.segment_count, dtype=np.bool_)
    reused = 0
    for i in range(chains.size):
        chain = chains.chain(i)
        known = seen[chain]
        if known.any():
            first_new = int(np.argmin(known)) if not known.all() else len(chain)
            if first_new > 0:
                reused += int(chains.end[chain[first_new - 1]])
        seen[chain] = True
    return reused / max(1, int(requests.prompt_len.sum()))

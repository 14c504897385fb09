"""Raw timings of every request of one benchmark run, kept as NumPy arrays.

Times are seconds on a monotonic clock relative to the moment the first request was
dispatched. No metric math happens here; `runners.bench.metrics.summarize` does that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from runners.workload.arrays import FloatArray, IntArray

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class RequestRecords:
    """One entry per request (index = request id), plus all inter-chunk gaps pooled.

    `ttft_s` and `e2el_s` are measured from `start_s` (the send time). `e2el_s` is the time of
    the last content chunk. `itl_s` holds every gap between consecutive content chunks of
    successful requests, pooled across requests; with `itl_count`, value i stands for
    `itl_count[i]` equal gaps (the simulator's decode batches, whose requests share each step's
    gap: `itl_gaps` expands them). `duration_s` runs from the first dispatch to the end of the
    last request.
    """

    prompt_len: IntArray
    output_len: IntArray
    success: BoolArray
    start_s: FloatArray
    ttft_s: FloatArray
    e2el_s: FloatArray
    itl_s: FloatArray
    duration_s: float
    itl_count: IntArray | None = None

    def __post_init__(self) -> None:
        n = len(self.prompt_len)
        for name in ("output_len", "success", "start_s", "ttft_s", "e2el_s"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"RequestRecords.{name} has {len(getattr(self, name))} != {n}")
        if self.itl_count is not None and len(self.itl_count) != len(self.itl_s):
            raise ValueError(
                f"RequestRecords.itl_count has {len(self.itl_count)} != {len(self.itl_s)}"
            )

    def itl_gaps(self) -> FloatArray:
        """Every inter-chunk gap, `itl_count` expanded."""
        if self.itl_count is None:
            return self.itl_s
        return np.repeat(self.itl_s, self.itl_count)

    @property
    def num_requests(self) -> int:
        return len(self.prompt_len)

    @staticmethod
    def concat(parts: list[RequestRecords]) -> RequestRecords:
        """Merge the records of replicas that served one workload side by side."""
        return RequestRecords(
            prompt_len=np.concatenate([p.prompt_len for p in parts]),
            output_len=np.concatenate([p.output_len for p in parts]),
            success=np.concatenate([p.success for p in parts]),
            start_s=np.concatenate([p.start_s for p in parts]),
            ttft_s=np.concatenate([p.ttft_s for p in parts]),
            e2el_s=np.concatenate([p.e2el_s for p in parts]),
            itl_s=np.concatenate([p.itl_s for p in parts]),
            duration_s=max(p.duration_s for p in parts),
            itl_count=_counts(parts),
        )


def _counts(parts: list[RequestRecords]) -> IntArray | None:
    """The merged `itl_count`: None when no part has one, else one count per value."""
    if all(p.itl_count is None for p in parts):
        return None
    return np.concatenate(
        [
            np.ones(len(p.itl_s), dtype=np.int64) if p.itl_count is None else p.itl_count
            for p in parts
        ]
    )


__all__ = ["BoolArray", "FloatArray", "IntArray", "RequestRecords"]

"""Benchmark side of a trial: raw per-request records and the one function that summarizes them.

Both the simulator and (later) the real async load generator produce `RequestRecords`;
`summarize` turns them into `Metrics` with exactly the formulas of `vllm bench serve`.
"""

from runners.bench.metrics import summarize
from runners.bench.records import RequestRecords

__all__ = ["RequestRecords", "summarize"]

"""Benchmark side of a trial: raw per-request records and the one function that summarizes them.

Both the simulator and the real load generator (`loadgen`) produce `RequestRecords` for the
request list of `runners.workload`; `summarize` turns them into `Metrics` with exactly the
formulas of `vllm bench serve`; `results` writes and reads `vllm bench serve` result files.
"""

from runners.bench.metrics import summarize
from runners.bench.records import RequestRecords

__all__ = ["RequestRecords", "summarize"]

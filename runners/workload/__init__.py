"""Workloads, the one source of request lists for the simulator and the load generator.

Data flow: a `Workload` -> `make_requests` -> `RequestSet` (per request: prompt and output
lengths, earliest send time, previous turn of its session, shared prefixes as `PrefixChains`,
and the real prompts of a text source). The simulator (`runners.sim.simulate`) plays that value
through its scheduler; a real trial (`runners.measure`) turns the same value into prompts
(`bench_requests`) and sends them at its send times, each session's turns one after another, so
a simulated and a real trial of one workload see the same requests.
Modules: `sources` (`make_requests`: synthetic or a file format), `requests` (the request list
and the synthetic sources), `lengths` (ShareGPT-like and fixed lengths), `arrivals` (seeded
streams, open-loop send times), `chains` (shared prefixes), `rows` (a file's rows -> request
list: window, time scale, sessions, prefixes), the file formats `sharegpt`, `table` (JSONL and
CSV) and `traces` (Mooncake, Azure; `columns` reads them a chunk at a time) on the bounded
reader `reader`, `tokens` (token counts of text prompts), `prompts` (what each request sends)
and `retime` (the same list at another load, for a load search).
"""

from runners.workload.arrays import FloatArray, IntArray
from runners.workload.arrivals import send_times, workload_streams
from runners.workload.chains import ChainBuilder, PrefixChains
from runners.workload.lengths import sharegpt_like_lengths
from runners.workload.prompts import TOKEN_ID_LOW, BenchRequest, TokenPrompts, bench_requests
from runners.workload.requests import RequestSet, TextPrompt
from runners.workload.retime import at_load, at_rate, mean_rate
from runners.workload.sources import (
    FORMATS,
    SYNTHETIC_DATASETS,
    describe_requests,
    make_requests,
)
from runners.workload.tokens import TokenCounter, estimate_tokens, local_tokenizer

__all__ = [
    "FORMATS",
    "SYNTHETIC_DATASETS",
    "TOKEN_ID_LOW",
    "BenchRequest",
    "ChainBuilder",
    "FloatArray",
    "IntArray",
    "PrefixChains",
    "RequestSet",
    "TextPrompt",
    "TokenCounter",
    "TokenPrompts",
    "at_load",
    "at_rate",
    "bench_requests",
    "describe_requests",
    "estimate_tokens",
    "local_tokenizer",
    "make_requests",
    "mean_rate",
    "send_times",
    "sharegpt_like_lengths",
    "workload_streams",
]

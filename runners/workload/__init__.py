"""Workload generation, the one source of request lists for the simulator and the load generator.

Data flow: a `Workload` -> `make_requests` -> `RequestSet` (per request: prompt and output
lengths, earliest send time, shared-prefix group, previous turn of its session). The simulator
(`runners.sim.simulate`) plays that value through its scheduler; a real trial
(`runners.measure`) turns the same value into token-id prompts (`token_prompts`) and sends them
at its send times, so a simulated and a real trial of one workload see the same requests.
Modules: `lengths` (ShareGPT-like and fixed lengths), `arrivals` (seeded streams, open-loop send
times), `requests` (the request list: prefixes, sessions), `prompts` (what each request sends),
`sharegpt` (ShareGPT files read and filtered like vllm bench). A new source (a trace file, a
data set) only has to produce a `RequestSet`.
"""

from runners.workload.arrays import FloatArray, IntArray
from runners.workload.arrivals import send_times, workload_streams
from runners.workload.lengths import sharegpt_like_lengths
from runners.workload.prompts import TOKEN_ID_LOW, BenchRequest, token_prompts
from runners.workload.requests import RequestSet, make_requests
from runners.workload.sharegpt import load_sharegpt, whitespace_tokens

__all__ = [
    "TOKEN_ID_LOW",
    "BenchRequest",
    "FloatArray",
    "IntArray",
    "RequestSet",
    "load_sharegpt",
    "make_requests",
    "send_times",
    "sharegpt_like_lengths",
    "token_prompts",
    "whitespace_tokens",
    "workload_streams",
]

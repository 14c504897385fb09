"""Turn a `Workload` into concrete requests: token lengths and client send times.

First stage of the simulator's data flow: `simulate` calls `make_requests` once, splits the
result over replicas, and hands each share to the scheduler. Lengths and open-loop send times
are drawn from the workload's own seed (like `vllm bench serve --seed`), so every trial of a
study sees the same requests; closed-loop (`max_concurrency`) send times are decided by the
scheduler as requests finish, so here they are only the earliest allowed send times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runners.bench.records import FloatArray, IntArray
from runners.sim import params
from runners.types import Workload


@dataclass(frozen=True)
class RequestSet:
    """Requests of one workload (or one replica's share of it), index = request id.

    `send_s` is the earliest time the client may send each request (all zeros for
    ``request_rate=inf``). `max_concurrency` is the client's in-flight limit (None = unlimited).
    """

    request_id: IntArray
    prompt_len: IntArray
    output_len: IntArray
    send_s: FloatArray
    max_concurrency: int | None

    @property
    def size(self) -> int:
        return len(self.prompt_len)

    def take(self, index: IntArray, max_concurrency: int | None) -> RequestSet:
        return RequestSet(
            self.request_id[index],
            self.prompt_len[index],
            self.output_len[index],
            self.send_s[index],
            max_concurrency,
        )


def workload_streams(workload: Workload) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent (lengths, arrivals) generators from the workload seed (SIMULATOR.md §11)."""
    lengths_seq, arrivals_seq = np.random.SeedSequence(workload.seed).spawn(2)
    return np.random.Generator(np.random.PCG64(lengths_seq)), np.random.Generator(
        np.random.PCG64(arrivals_seq)
    )


def sharegpt_like_lengths(n: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """Lognormal (prompt, output) pairs filtered like vLLM bench's ShareGPT loader."""
    prompts: list[IntArray] = []
    outputs: list[IntArray] = []
    have = 0
    while have < n:
        batch = max(64, 2 * (n - have))
        p = np.maximum(
            1,
            np.rint(
                np.exp(
                    params.SHAREGPT_MU_IN + params.SHAREGPT_SIGMA_IN * rng.standard_normal(batch)
                )
            ),
        ).astype(np.int64)
        o = np.maximum(
            1,
            np.rint(
                np.exp(
                    params.SHAREGPT_MU_OUT + params.SHAREGPT_SIGMA_OUT * rng.standard_normal(batch)
                )
            ),
        ).astype(np.int64)
        valid = (
            (p >= params.SHAREGPT_MIN_LEN_TOK)
            & (o >= params.SHAREGPT_MIN_LEN_TOK)
            & (p <= params.SHAREGPT_MAX_PROMPT_TOK)
            & (p + o <= params.SHAREGPT_MAX_TOTAL_TOK)
        )
        prompts.append(p[valid])
        outputs.append(o[valid])
        have += int(valid.sum())
    return np.concatenate(prompts)[:n], np.concatenate(outputs)[:n]


def send_times(workload: Workload, rng: np.random.Generator) -> FloatArray:
    """Earliest send time per request: 0 for rate inf, else Poisson (exponential gaps)."""
    n = workload.num_prompts
    if math.isinf(workload.request_rate):
        return np.zeros(n, dtype=np.float64)
    gaps = rng.exponential(1.0 / workload.request_rate, n)
    gaps[0] = 0.0
    return np.cumsum(gaps)


def make_requests(workload: Workload) -> RequestSet:
    """All requests of the workload in send order."""
    lengths_rng, arrivals_rng = workload_streams(workload)
    n = workload.num_prompts
    if workload.dataset == "random":
        if workload.input_len is None or workload.output_len is None:
            raise ValueError("the random dataset needs input_len and output_len")
        prompt = np.full(n, workload.input_len, dtype=np.int64)
        output = np.full(n, workload.output_len, dtype=np.int64)
    else:
        prompt, output = sharegpt_like_lengths(n, lengths_rng)
    return RequestSet(
        request_id=np.arange(n, dtype=np.int64),
        prompt_len=prompt,
        output_len=output,
        send_s=send_times(workload, arrivals_rng),
        max_concurrency=workload.max_concurrency,
    )

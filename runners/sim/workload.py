"""Turn a `Workload` into concrete requests: token lengths and client send times.

First stage of the simulator's data flow: `simulate` calls `make_requests` once, splits the
result over replicas, and hands each share to the scheduler. Lengths and open-loop send times
are drawn from the workload's own seed (like `vllm bench serve --seed`), so every trial of a
study sees the same requests; closed-loop (`max_concurrency`) send times are decided by the
scheduler as requests finish, so here they are only the earliest allowed send times.
Finite-rate arrivals are gamma-distributed gaps with shape `burstiness` (1 = Poisson), as in
`vllm bench serve --burstiness`. `prefix_groups` x `prefix_len` prepends a shared prefix (system
prompt) to every prompt, requests assigned to groups round-robin; `turns` > 1 makes multi-turn
conversations whose turn t prompt is the whole history plus a new user message, sent when turn
t-1 has finished (`parent`).
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
    `parent` is the previous turn of the same conversation (-1 = first turn), which must finish
    before this request is sent; `prefix_group` (-1 = none) and `prefix_len` describe a prefix
    shared with the other requests of the group.
    """

    request_id: IntArray
    prompt_len: IntArray
    output_len: IntArray
    send_s: FloatArray
    max_concurrency: int | None
    parent: IntArray | None = None
    prefix_group: IntArray | None = None
    prefix_len: int = 0

    @property
    def size(self) -> int:
        return len(self.prompt_len)

    def take(self, index: IntArray, max_concurrency: int | None) -> RequestSet:
        """A subset (a replica's share); parents are re-indexed into the subset (a parent
        outside it is dropped: callers keep conversations on one replica)."""
        parent = None
        if self.parent is not None:
            position = np.full(self.size, -1, dtype=np.int64)
            position[index] = np.arange(len(index), dtype=np.int64)
            old = self.parent[index]
            parent = np.where(old >= 0, position[np.maximum(old, 0)], -1).astype(np.int64)
        return RequestSet(
            self.request_id[index],
            self.prompt_len[index],
            self.output_len[index],
            self.send_s[index],
            max_concurrency,
            parent,
            None if self.prefix_group is None else self.prefix_group[index],
            self.prefix_len,
        )

    def conversation(self) -> IntArray:
        """Index of the first turn of each request's conversation (itself when single-turn)."""
        root = np.arange(self.size, dtype=np.int64)
        if self.parent is None:
            return root
        for i in range(self.size):
            p = int(self.parent[i])
            if p >= 0:
                root[i] = root[p]
        return root


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
    """Earliest send time per request: 0 for rate inf, else gamma gaps of shape `burstiness`
    and mean 1/rate (burstiness 1 = Poisson; < 1 burstier, > 1 more regular)."""
    n = workload.num_prompts
    if math.isinf(workload.request_rate):
        return np.zeros(n, dtype=np.float64)
    shape = max(workload.burstiness, 1e-3)
    gaps = rng.gamma(shape, 1.0 / (workload.request_rate * shape), n)
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
    group: IntArray | None = None
    prefix = 0
    if workload.prefix_groups > 0 and workload.prefix_len > 0:
        prefix = workload.prefix_len
        group = np.arange(n, dtype=np.int64) % workload.prefix_groups
        prompt = prompt + prefix
    parent: IntArray | None = None
    if workload.turns > 1:
        turn = np.arange(n, dtype=np.int64) % workload.turns
        parent = np.where(turn > 0, np.arange(n, dtype=np.int64) - 1, -1).astype(np.int64)
        full = prompt.copy()
        for i in range(1, n):
            if turn[i] > 0:
                # history (previous prompt + answer) + the new user message (prefix only once)
                full[i] = full[i - 1] + output[i - 1] + prompt[i] - prefix
        prompt = full
    return RequestSet(
        request_id=np.arange(n, dtype=np.int64),
        prompt_len=prompt,
        output_len=output,
        send_s=send_times(workload, arrivals_rng),
        max_concurrency=workload.max_concurrency,
        parent=parent,
        prefix_group=group,
        prefix_len=prefix,
    )

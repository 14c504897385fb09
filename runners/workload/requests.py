"""The request list of a workload: `make_requests(workload) -> RequestSet`.

One value feeds both consumers: the simulator (`runners.sim`) splits it over replicas and plays
it through its scheduler; the real load generator (`runners.measure`) turns it into prompts
(`runners.workload.prompts`) and sends them at its send times. Lengths and open-loop send times
are drawn from the workload's own seed (like `vllm bench serve --seed`), so every trial of a
study, simulated or real, sees the same requests. `prefix_groups` x `prefix_len` prepends a
shared prefix (a system prompt) to every prompt, requests assigned to groups round-robin;
`turns` > 1 makes multi-turn sessions whose turn t prompt is the whole history plus a new user
message, to be sent when turn t-1 has finished (`parent`). Closed-loop (`max_concurrency`)
send times are decided by the client as requests finish, so `send_s` holds only the earliest
allowed send times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runners.errors import DatasetError
from runners.types import Workload
from runners.workload.arrays import FloatArray, IntArray
from runners.workload.arrivals import send_times, workload_streams
from runners.workload.lengths import fixed_lengths, sharegpt_like_lengths


@dataclass(frozen=True)
class RequestSet:
    """Requests of one workload (or one replica's share of it), index = request id.

    `send_s` is the earliest time the client may send each request (all zeros for
    ``request_rate=inf``). `max_concurrency` is the client's in-flight limit (None = unlimited).
    `parent` is the previous turn of the same conversation (-1 = first turn), which must finish
    before this request is sent; `prefix_group` (-1 = none) and `prefix_len` describe a prefix
    shared with the other requests of the group, one of `prefix_groups` groups.
    """

    request_id: IntArray
    prompt_len: IntArray
    output_len: IntArray
    send_s: FloatArray
    max_concurrency: int | None
    parent: IntArray | None = None
    prefix_group: IntArray | None = None
    prefix_len: int = 0
    prefix_groups: int = 0

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
            self.prefix_groups,
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


def make_requests(workload: Workload) -> RequestSet:
    """All requests of the workload in send order."""
    lengths_rng, arrivals_rng = workload_streams(workload)
    n = workload.num_prompts
    if workload.dataset == "random":
        if workload.input_len is None or workload.output_len is None:
            raise DatasetError(
                f"workload {workload.name!r}: the random dataset needs input_len and output_len"
            )
        prompt, output = fixed_lengths(n, workload.input_len, workload.output_len)
    else:
        prompt, output = sharegpt_like_lengths(n, lengths_rng)
    group: IntArray | None = None
    prefix = 0
    groups = 0
    if workload.prefix_groups > 0 and workload.prefix_len > 0:
        prefix = workload.prefix_len
        groups = workload.prefix_groups
        group = np.arange(n, dtype=np.int64) % groups
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
        prefix_groups=groups,
    )

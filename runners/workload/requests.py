"""The request list of a workload: `RequestSet`, and the synthetic sources that draw one.

One value feeds both consumers: the simulator (`runners.sim`) splits it over replicas and plays
it through its scheduler; the real load generator (`runners.measure`) turns it into prompts
(`runners.workload.prompts`) and sends them at its send times, each turn of a session only
after the previous turn finished. File sources (`runners.workload.sources`) build the same
value from a trace or data set. Synthetic lengths and open-loop send times are drawn from the
workload's own seed (like `vllm bench serve --seed`), so every trial of a study, simulated or
real, sees the same requests. `prefix_groups` x `prefix_len` prepends a shared prefix (a system
prompt) to every prompt, requests assigned to groups round-robin; `turns` > 1 makes multi-turn
sessions whose turn t prompt is the whole history (the previous prompt, a stand-in for the
previous answer) plus a new user message. Shared prefixes, of either kind, are `PrefixChains`.
Closed-loop (`max_concurrency`) send times are decided by the client as requests finish, so
`send_s` holds only the earliest allowed send times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runners.errors import DatasetError
from runners.types import Workload
from runners.workload.arrays import FloatArray, IntArray
from runners.workload.arrivals import send_times, workload_streams
from runners.workload.chains import ChainBuilder, PrefixChains
from runners.workload.lengths import fixed_lengths, sharegpt_like_lengths
from runners.workload.tokens import Message

TextPrompt = str | tuple[Message, ...]
"""A real prompt from a data set: completion text, or chat messages."""


@dataclass(frozen=True)
class RequestSet:
    """Requests of one workload (or one replica's share of it), index = request id.

    `send_s` is the earliest time the client may send each request (all zeros for
    ``request_rate=inf``). `max_concurrency` is the client's in-flight limit (None = unlimited).
    `parent` is the previous turn of the same session (-1 = first turn), which must finish
    before this request is sent. `chains` describes the prompt prefixes requests share (None =
    none shared). `texts` holds real prompts when the source had them (None: token-id prompts
    of the listed lengths are sent); `prompt_len` is then their token count.
    """

    request_id: IntArray
    prompt_len: IntArray
    output_len: IntArray
    send_s: FloatArray
    max_concurrency: int | None
    parent: IntArray | None = None
    chains: PrefixChains | None = None
    texts: tuple[TextPrompt, ...] | None = None

    @property
    def size(self) -> int:
        return len(self.prompt_len)

    def take(self, index: IntArray, max_concurrency: int | None) -> RequestSet:
        """A subset (a replica's share); parents are re-indexed into the subset (a parent
        outside it is dropped: callers keep sessions on one replica)."""
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
            None if self.chains is None else self.chains.take(index),
            None if self.texts is None else tuple(self.texts[i] for i in index.tolist()),
        )

    def conversation(self) -> IntArray:
        """Index of the first turn of each request's session (itself when single-turn)."""
        root = np.arange(self.size, dtype=np.int64)
        if self.parent is None:
            return root
        for i in range(self.size):
            p = int(self.parent[i])
            if p >= 0:
                root[i] = root[p]
        return root


def synthetic_requests(workload: Workload) -> RequestSet:
    """All requests of a synthetic workload (``sharegpt-like`` or ``random``) in send order."""
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
    chains = None
    if group is not None or parent is not None:
        chains = shared_prefixes(prompt, parent, group, prefix)
    return RequestSet(
        request_id=np.arange(n, dtype=np.int64),
        prompt_len=prompt,
        output_len=output,
        send_s=send_times(workload, arrivals_rng),
        max_concurrency=workload.max_concurrency,
        parent=parent,
        chains=chains,
    )


def shared_prefixes(
    prompt_len: IntArray,
    parent: IntArray | None,
    group: IntArray | None,
    group_len: int,
) -> PrefixChains:
    """Chains of prefix groups and sessions: a group's requests start with its prefix of
    `group_len` tokens; a later turn starts with the whole prompt of its previous turn."""
    builder = ChainBuilder()
    has_child = session_parents(parent, len(prompt_len))
    chains: list[list[int]] = []
    for i in range(len(prompt_len)):
        p = -1 if parent is None else int(parent[i])
        if p >= 0:
            base = chains[p]
        elif group is not None and group_len > 0:
            base = builder.extend([], ("group", int(group[i])), group_len)
        else:
            base = []
        chains.append(builder.whole_prompt(base, int(prompt_len[i]), i) if has_child[i] else base)
    return builder.finish(chains)


def session_parents(parent: IntArray | None, n: int) -> np.ndarray:
    """Whether each request is the previous turn of another (its prompt is then shared)."""
    has_child = np.zeros(n, dtype=np.bool_)
    if parent is not None:
        has_child[parent[parent >= 0]] = True
    return has_child

"""Shared prefixes of a request list, as chains of segments: one form for every source.

Where it sits: every source of requests that shares prompt prefixes (Mooncake traces' block
hash ids, rows with a prefix id, synthetic prefix groups, the history of a multi-turn session)
describes them here, and both consumers read the same value: the simulator's prefix cache
(`runners.sim.replica`) hits whole segments, and the real load generator's token-id prompts
(`runners.workload.prompts`) give every segment the same token ids wherever it appears.

A request's prompt starts with its chain: segments in order, each covering a fixed token range
(`start`..`end`) of the prompt; what follows the chain is the request's own. Two requests share
exactly the tokens of their common leading segments. Segments are canonical: `ChainBuilder`
gives a new id to every distinct (previous segment, key, length), so a segment id fixes the
whole prefix before it, as chained block hashes do in the engines' prefix caches.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from runners.workload.arrays import IntArray


@dataclass(frozen=True)
class PrefixChains:
    """Per request (index = request id) its chain: ``segments[offsets[i]:offsets[i + 1]]``.

    `start` and `end` give, per segment id, the prompt tokens it covers; a chain's segments are
    contiguous from token 0, so a request's chain ends at ``end`` of its last segment.
    """

    offsets: IntArray
    segments: IntArray
    start: IntArray
    end: IntArray

    @property
    def size(self) -> int:
        return len(self.offsets) - 1

    @property
    def segment_count(self) -> int:
        return len(self.start)

    def chain(self, index: int) -> IntArray:
        return self.segments[int(self.offsets[index]) : int(self.offsets[index + 1])]

    def chain_end(self) -> IntArray:
        """Tokens covered by each request's chain (0 without one)."""
        lengths = np.diff(self.offsets)
        last = self.segments[np.maximum(self.offsets[1:] - 1, 0)] if len(self.segments) else None
        if last is None:
            return np.zeros(self.size, dtype=np.int64)
        ends: IntArray = np.where(lengths > 0, self.end[last], 0).astype(np.int64)
        return ends

    def take(self, index: IntArray) -> PrefixChains:
        """The chains of a subset of requests (segment ids unchanged)."""
        lengths = np.diff(self.offsets)[index]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if len(index) == 0 or int(offsets[-1]) == 0:
            segments = np.zeros(0, dtype=np.int64)
        else:
            starts = self.offsets[index]
            positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
            segments = self.segments[positions]
        return PrefixChains(offsets, segments, self.start, self.end)

    def shared_tokens(self, a: int, b: int) -> int:
        """Prompt tokens two requests share: the end of their common leading segments."""
        left, right = self.chain(a), self.chain(b)
        common = 0
        for x, y in zip(left.tolist(), right.tolist(), strict=False):
            if x != y:
                break
            common = int(self.end[x])
        return common


class ChainBuilder:
    """Builds canonical `PrefixChains` request by request.

    `add(parent_chain, key, length)` returns the id of the segment that follows `parent_chain`'s
    last segment with that key and length, creating it on first use; `finish(chains)` packs one
    chain per request.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[int, Hashable, int], int] = {}
        self._start: list[int] = []
        self._end: list[int] = []

    def covered(self, chain: list[int]) -> int:
        """Prompt tokens a chain under construction covers."""
        return self._end[chain[-1]] if chain else 0

    def extend(self, chain: list[int], key: Hashable, length: int) -> list[int]:
        """`chain` followed by the segment (`key`, `length` tokens)."""
        return self.extend_all(chain, [key], [length])

    def whole_prompt(self, chain: list[int], prompt_len: int, request: int) -> list[int]:
        """`chain` followed by the rest of request `request`'s prompt as its own segment, so a
        later turn that starts with this whole prompt can share it."""
        rest = prompt_len - self.covered(chain)
        return self.extend(chain, ("prompt", request), rest) if rest > 0 else chain

    def extend_all(
        self, chain: list[int], keys: Sequence[Hashable], lengths: Sequence[int]
    ) -> list[int]:
        """`chain` followed by one segment per (key, length), in order."""
        out = list(chain)
        parent = out[-1] if out else -1
        ids, start, end = self._ids, self._start, self._end
        for key, length in zip(keys, lengths, strict=True):
            slot = (parent, key, length)
            found = ids.get(slot)
            if found is None:
                found = len(start)
                ids[slot] = found
                begin = end[parent] if parent >= 0 else 0
                start.append(begin)
                end.append(begin + length)
            out.append(found)
            parent = found
        return out

    def finish(self, chains: Sequence[list[int]]) -> PrefixChains:
        lengths = np.array([len(c) for c in chains], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = [s for c in chains for s in c]
        return PrefixChains(
            offsets,
            np.array(flat, dtype=np.int64),
            np.array(self._start, dtype=np.int64),
            np.array(self._end, dtype=np.int64),
        )


def block_chains(
    ids: Sequence[Sequence[int]], prompt_len: Sequence[int], block: int
) -> PrefixChains | None:
    """Chains of blocks of `block` tokens named by hash ids (row i: ``ids[i]``, its last block
    partial when the prompt ends inside it), when the ids are chained already: each id always
    follows the same id, at the same place, with the same length. The ids then are the
    segments, numbered densely; otherwise None, and `ChainBuilder` names the segments."""
    counts = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(counts.sum()))
    return flat_block_chains(counts, flat, np.asarray(prompt_len, dtype=np.int64), block)


def flat_block_chains(
    counts: IntArray, flat: IntArray, prompt_len: IntArray, block: int
) -> PrefixChains | None:
    """`block_chains` of the ids given flat: row i has the next ``counts[i]`` ids of `flat`.

    Each id's place in a row follows from the ids before it (the first place has none), so
    the checks are: every place of an id has the same id before it (or none), and the same
    length: `block`, except where a prompt ends inside a row's last block. A few whole-array
    passes, each of them on arrays made once (large fresh arrays cost page faults)."""
    total = len(flat)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if total == 0:
        return None
    unique_count, inverse = _dense_ranks(flat)
    has = counts > 0
    firsts, lasts, row_counts = offsets[:-1][has], offsets[1:][has] - 1, counts[has]
    before = np.empty(total, dtype=np.int64)  # rank of the id before each place + 1, or 0
    np.add(inverse[:-1], 1, out=before[1:])
    before[firsts] = 0
    id_before = np.empty(unique_count, dtype=np.int64)
    id_before[inverse] = before
    if not np.array_equal(id_before[inverse], before):
        return None
    last_length = np.minimum(block, prompt_len[has] - block * (row_counts - 1))
    length = np.full(unique_count, block, dtype=np.int64)
    length[inverse[lasts]] = last_length
    if not np.array_equal(length[inverse[lasts]], last_length):
        return None
    partial = length != block  # ids of a short block: only ever at a row's end
    if np.count_nonzero(partial[inverse]) != np.count_nonzero(partial[inverse[lasts]]):
        return None
    position = before  # (reused) each place's distance from its row's first place
    position.fill(1)
    position[firsts[1:]] = 1 - row_counts[:-1]
    position[0] = 0
    np.cumsum(position, out=position)
    start = np.empty(unique_count, dtype=np.int64)
    start[inverse] = position
    start *= block
    return PrefixChains(offsets, inverse, start, start + length)


def _dense_ranks(values: IntArray) -> tuple[int, IntArray]:
    """(number of distinct values, rank of each value among them), as `np.unique` gives them;
    without sorting when the values are small non-negative numbers (hash ids numbered from 0)."""
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 4 * len(values):
        unique, inverse = np.unique(values, return_inverse=True)
        return len(unique), inverse.astype(np.int64)
    present = np.zeros(high + 1, dtype=np.bool_)
    present[values] = True
    if bool(present.all()):  # the ids are 0, 1, 2, ... already
        return high + 1, values  # (the ranks share the values' memory)
    rank = np.cumsum(present, dtype=np.int64) - 1
    return int(rank[-1]) + 1, rank[values]

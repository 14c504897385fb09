"""Shared prefixes in one simulated replica's KV pool: the segments of a request list's chains.

Place in the data flow: `replica.ReplicaEngine` builds one `PrefixCache` when the engine caches
prefixes and its requests share some (`RequestSet.chains`); the scheduler models ask it what an
arriving request hits and what admitting it costs. A segment's pages are the KV pages whose
last token lies in it (`end // page - start // page`): a page straddling the end of a chain
holds tokens the requests do not share, so it is never shared. A segment is held (`ref`) by
every admitted request whose chain contains it, and counted in the pool once while held; it is
hit when it has been computed (`ready`, set when a holder produced its first token) and is still
held or, released, still in the pool's LRU free queue: released pages join the queue's tail
(`q_tail`) with a request's own pages first and its chain's last segment before its first, and
the scheduler's allocations evict from the front (`q_front`), so a segment is cached while its
first page to go is not passed. A request hits its chain's leading cached segments, at most
all but its prompt's last token, in whole pages.
"""

from __future__ import annotations

import numpy as np

from runners.workload import IntArray, PrefixChains

NOT_CACHED = -(1 << 62)


class PrefixCache:
    """Holders, readiness and LRU positions of one replica's prefix segments."""

    def __init__(self, chains: PrefixChains, page: int) -> None:
        self.offsets = chains.offsets
        self.segments = chains.segments
        self.pages = (chains.end // page - chains.start // page).astype(np.int64)
        self.end = chains.end
        count = chains.segment_count
        self.ref = np.zeros(count, dtype=np.int64)
        self.ready = np.zeros(count, dtype=np.bool_)
        self.pos = np.full(count, NOT_CACHED, dtype=np.int64)
        self.chain_pages: IntArray = chains.chain_end() // page
        self.held = np.zeros(chains.size, dtype=np.bool_)
        self.version = 0
        self._memo: tuple[tuple[int, int, int], tuple[IntArray, np.ndarray, int]] | None = None

    def has_chain(self, rid: int) -> bool:
        return bool(self.offsets[rid + 1] > self.offsets[rid])

    def _chain(self, rid: int) -> IntArray:
        return self.segments[int(self.offsets[rid]) : int(self.offsets[rid + 1])]

    def _look(self, rid: int, q_front: int) -> tuple[IntArray, np.ndarray, int]:
        """(chain, its leading cached segments as a mask, their tokens), remembered until the
        cache or the free queue changes (an admission asks up to three times)."""
        key = (rid, q_front, self.version)
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        chain = self._chain(rid)
        available = self.ready[chain] & ((self.ref[chain] > 0) | (self.pos[chain] >= q_front))
        leading = np.cumprod(available).astype(np.bool_)
        count = int(leading.sum())
        tokens = int(self.end[chain[count - 1]]) if count else 0
        self._memo = (key, (chain, leading, tokens))
        return chain, leading, tokens

    def hit_tokens(self, rid: int, q_front: int) -> int:
        """Prompt tokens of `rid`'s leading cached segments."""
        return self._look(rid, q_front)[2]

    def charge(self, rid: int, q_front: int) -> tuple[int, int]:
        """(revived, fresh) pages admitting `rid` takes from the pool: its cached segments no
        request holds come back from the free queue; its missing ones are allocated anew."""
        chain, leading, _ = self._look(rid, q_front)
        loose = self.ref[chain] == 0
        if not loose.any():
            return 0, 0
        revived = int(self.pages[chain[loose & leading]].sum())
        fresh = int(self.pages[chain[loose & ~leading]].sum())
        return revived, fresh

    def hold(self, rid: int, q_front: int) -> None:
        """`rid` is admitted: it holds every segment of its chain; segments it must compute
        again are no longer ready."""
        chain, leading, _ = self._look(rid, q_front)
        self.ready[chain[~leading & (self.ref[chain] == 0)]] = False
        self.ref[chain] += 1
        self.held[rid] = True
        self.version += 1

    def release(self, rid: int, own_pages: int, q_tail: int) -> int:
        """`rid` lets go of its segments (finished or preempted); returns the pages of those no
        one holds any more, which join the free queue after its `own_pages`."""
        self.held[rid] = False
        self.version += 1
        chain = self._chain(rid)
        self.ref[chain] -= 1
        loose = chain[self.ref[chain] == 0]
        if loose.size == 0:
            return 0
        pages = self.pages[loose]
        total = int(pages.sum())
        before = np.cumsum(pages) - pages  # pages of the earlier loose segments
        self.pos[loose] = np.where(
            self.ready[loose], q_tail + own_pages + total - before - pages, NOT_CACHED
        )
        return total

    def computed(self, ids: IntArray) -> None:
        """Requests that produced their first token: their whole chain is computed."""
        self.version += 1
        for rid in ids.tolist():
            self.ready[self._chain(rid)] = True

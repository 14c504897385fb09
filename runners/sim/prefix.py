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
all but its prompt's last token, in whole pages. Every holder of a segment holds the segments
before it (a segment fixes its prefix), so a chain's held segments lead it: a look walks those,
then the unheld ones only while they are cached, and takes the pages of the rest from the
chain's suffix sums.

A chain's private tail (its segments after the last one another chain shares: in a Mooncake
trace, most of a prompt) is only ever held or looked at by its own request, so its state stays
implicit (never computed before admission, held while admitted) and is not walked; a finished
request's tail just returns its pages, a preempted one's is written out first. So the state
lists start with the shared heads' segments only (renumbered 0..; building lists of every
segment cost more than the rest of the setup), and a tail written out is numbered after them.

The state is kept in plain Python lists, not NumPy arrays: a chain has a few dozen segments
at most and is read several times per admission attempt, where NumPy's per-call overhead
cost more than the work (all counts are integers, so results are the same either way).
"""

from __future__ import annotations

import itertools

import numpy as np

from runners.workload import IntArray, PrefixChains

NOT_CACHED = -(1 << 62)


class PrefixCache:
    """Holders, readiness and LRU positions of one replica's prefix segments."""

    def __init__(self, chains: PrefixChains, page: int) -> None:
        self.offsets: list[int] = chains.offsets.tolist()  # of each request's whole chain
        self.chain_pages: list[int] = (chains.chain_end() // page).tolist()
        self.held = [False] * chains.size
        # per held request, the leading segments its admission hit: computed, and held by it
        # since, so still computed when its first token comes (`computed_ids` skips them)
        self.lead = [0] * chains.size
        self.head_end, self.tail_pages = _private_tails(chains, page)
        self.lazy = [True] * chains.size  # its private tail's state is implicit
        self.tail_ready = [False] * chains.size
        # The state covers the segments of the shared heads only, numbered 0.. in the order
        # of their ids (a Mooncake trace's heads hold about a third of its chains' segments);
        # `_expand` numbers a private tail's segments after them when it is written out.
        # `segments[first[rid]:stop[rid]]` is `rid`'s chain as walked: its head while its
        # tail is implicit, then (copied to the end of `segments`) its whole chain.
        self._chains = chains
        self._page = page
        head_end = np.asarray(self.head_end, dtype=np.int64)
        heads = head_end - chains.offsets[:-1]  # head lengths
        starts = np.concatenate([[0], np.cumsum(heads)]).astype(np.int64)
        # the heads' places in `chains.segments`, one run per request
        places = np.repeat(chains.offsets[:-1] - starts[:-1], heads)
        head_ids = chains.segments[places + np.arange(int(starts[-1]), dtype=np.int64)]
        present = np.zeros(chains.segment_count, dtype=np.bool_)
        present[head_ids] = True
        ids = np.flatnonzero(present)
        local = np.cumsum(present, dtype=np.int64) - 1
        self.segments: list[int] = local[head_ids].tolist()
        self.first: list[int] = starts[:-1].tolist()
        self.stop: list[int] = starts[1:].tolist()
        seg_pages = chains.end[ids] // page - chains.start[ids] // page
        self.pages: list[int] = seg_pages.tolist()
        self.end: list[int] = chains.end[ids].tolist()
        # per place in `segments`, the pages of its chain's segments from there to its end
        walked = np.concatenate([[0], np.cumsum(seg_pages[local[head_ids]])]).astype(np.int64)
        self.suffix: list[int] = (np.repeat(walked[starts[1:]], heads) - walked[:-1]).tolist()
        count = len(ids)
        self.ref = [0] * count
        self.ready = [False] * count
        self.pos = [NOT_CACHED] * count
        # `hit_ceiling` of each request, kept current (`_expand` changes it)
        last = chains.segments[np.maximum(head_end - 1, 0)] if len(chains.segments) else heads
        ends = chains.end[last] if len(chains.segments) else heads
        self.ceiling: list[int] = np.where(heads > 0, ends, 0).tolist()
        self.version = 0
        self.holds = 0  # admissions so far (`hold` calls)
        self._memo_holds = -1  # `holds` at the last look (`unheld_floor`'s validity)
        # the last look: its (rid, q_front, version) key as three ints (no tuple to build and
        # compare on every call), and what it found
        self._memo_rid = -1
        self._memo_front = 0
        self._memo_version = -1
        self._memo: tuple[list[int], int, int, int, int] = ([], 0, 0, 0, 0)

    def has_chain(self, rid: int) -> bool:
        return self.offsets[rid + 1] > self.offsets[rid]

    def _head(self, rid: int) -> list[int]:
        """`rid`'s chain, without its private tail while that is implicit."""
        return self.segments[self.first[rid] : self.stop[rid]]

    def _look(self, rid: int, q_front: int) -> tuple[list[int], int, int, int, int]:
        """(chain, how many of its leading segments are cached, their tokens, and the pages
        `charge` returns), in one pass over the chain, remembered until the cache or the free
        queue changes (an admission asks up to three times). An implicit private tail was
        never computed: it ends the cached segments and is allocated whole."""
        if (
            rid == self._memo_rid
            and q_front == self._memo_front
            and self.version == self._memo_version
        ):
            return self._memo
        lazy = self.lazy[rid]
        first = self.first[rid]
        chain = self.segments[first : self.stop[rid]]
        ready, ref, suffix = self.ready, self.ref, self.suffix
        size = len(chain)
        # Every holder of a segment holds the segments before it (a segment fixes its
        # prefix), so a chain's held segments lead it: its cached ones are the held ones
        # computed, then, if all of those are, the unheld ones computed and still in the free
        # queue; the pages of the unheld ones are its suffix sums.
        held = 0
        for seg in chain:
            if not ref[seg] or not ready[seg]:
                break
            held += 1
        count = held
        revived = fresh = 0
        if held < size:
            if not ref[chain[held]]:  # the rest is unheld
                pos = self.pos
                for seg in chain[held:]:
                    if not ready[seg] or pos[seg] < q_front:
                        break
                    count += 1
                if count < size:
                    fresh = suffix[first + count]
                revived = suffix[first + held] - fresh
            else:  # a held segment not computed yet ends the cached ones
                unheld = held + 1
                while unheld < size and ref[chain[unheld]]:
                    unheld += 1
                if unheld < size:
                    fresh = suffix[first + unheld]
        if lazy:
            fresh += self.tail_pages[rid]
        tokens = self.end[chain[count - 1]] if count else 0
        looked = (chain, count, tokens, revived, fresh)
        self._memo = looked
        self._memo_rid, self._memo_front, self._memo_version = rid, q_front, self.version
        self._memo_holds = self.holds
        return looked

    def unheld_floor(self, rid: int) -> int:
        """A lower bound of the pages of waiting `rid`'s chain segments no request holds (what
        `charge` sums to, whatever is cached): exact at its last look and, while no request has
        been admitted since, only growing (releases only drop holders); else its implicit
        private tail's."""
        if rid == self._memo_rid and self._memo_holds == self.holds:
            memo = self._memo  # the last look's pages: revived plus fresh
            return memo[3] + memo[4]
        return self.tail_pages[rid] if self.lazy[rid] else 0

    def hit_ceiling(self, rid: int) -> int:
        """An upper bound of `hit_tokens(rid, ...)` without walking the chain: the end of its
        shared head while its private tail is implicit (never computed, so never hit), else
        of its whole chain."""
        return self.ceiling[rid]

    def hit_tokens(self, rid: int, q_front: int) -> int:
        """Prompt tokens of `rid`'s leading cached segments."""
        return self._look(rid, q_front)[2]

    def admission(self, rid: int, q_front: int) -> tuple[int, int, int]:
        """`hit_tokens` and `charge` in one call: (tokens, revived, fresh)."""
        looked = self._look(rid, q_front)
        return looked[2], looked[3], looked[4]

    def charge(self, rid: int, q_front: int) -> tuple[int, int]:
        """(revived, fresh) pages admitting `rid` takes from the pool: its cached segments no
        request holds come back from the free queue; its missing ones are allocated anew."""
        looked = self._look(rid, q_front)
        return looked[3], looked[4]

    def hold(self, rid: int, q_front: int) -> None:
        """`rid` is admitted: it holds every segment of its chain; segments it must compute
        again are no longer ready."""
        looked = self._look(rid, q_front)
        chain, leading = looked[0], looked[1]
        ref = self.ref
        if leading == len(chain):
            for seg in chain:
                ref[seg] += 1
        else:
            ready = self.ready
            for seg in chain[:leading]:
                ref[seg] += 1
            for seg in chain[leading:]:
                if not ref[seg]:
                    ready[seg] = False
                ref[seg] += 1
        self.held[rid] = True
        self.lead[rid] = leading
        self.version += 1
        self.holds += 1

    def release(self, rid: int, own_pages: int, q_tail: int, final: bool = False) -> int:
        """`rid` lets go of its segments (finished, `final`, or preempted); returns the pages
        of those no one holds any more, which join the free queue after its `own_pages`. A
        finished request's private tail joins the queue without its state: no one asks."""
        self.held[rid] = False
        self.lead[rid] = 0
        self.version += 1
        total = 0
        if self.lazy[rid]:
            if final:
                total = self.tail_pages[rid]
            else:
                self._expand(rid)
        # the chain's first loose segment joins the queue last: it is evicted last. So, from
        # the chain's end, each loose segment takes the queue's place after its own pages, the
        # private tail's and the loose segments after it (one pass over the chain)
        ref, pages, ready, pos = self.ref, self.pages, self.ready, self.pos
        start = q_tail + own_pages
        place = start + total
        chain = self.segments[self.first[rid] : self.stop[rid]]
        for seg in reversed(chain):
            r = ref[seg] - 1
            ref[seg] = r
            if not r:
                pos[seg] = place if ready[seg] else NOT_CACHED
                place += pages[seg]
        return place - start

    def computed(self, ids: IntArray) -> None:
        """Requests that produced their first token: their whole chain is computed."""
        self.computed_ids(ids.tolist())

    def computed_ids(self, ids: list[int]) -> None:
        """`computed` of a list. The segments a request hit at admission are computed already
        (`lead`); if no request has others, nothing a look reads changed (no new version)."""
        ready, segments, first, stop = self.ready, self.segments, self.first, self.stop
        tail_ready, lead = self.tail_ready, self.lead
        changed = False
        for rid in ids:
            start, end = first[rid] + lead[rid], stop[rid]
            if start < end:
                changed = True
                for seg in segments[start:end]:
                    ready[seg] = True
            tail_ready[rid] = True
        if changed:
            self.version += 1

    def _expand(self, rid: int) -> None:
        """Write held `rid`'s implicit private tail into the segments' state (it is being
        preempted, so it will look at its chain again): its segments (no other chain has
        them) are numbered after the others, held by it, and computed if its prompt was."""
        tail = self._chains.segments[self.head_end[rid] : self.offsets[rid + 1]]
        size = len(tail)
        known = len(self.ref)
        page = self._page
        self.pages += (self._chains.end[tail] // page - self._chains.start[tail] // page).tolist()
        self.end += self._chains.end[tail].tolist()
        self.ref += [1] * size
        self.ready += [self.tail_ready[rid]] * size
        self.pos += [NOT_CACHED] * size
        chain = self._head(rid) + list(range(known, known + size))
        self.first[rid] = len(self.segments)
        self.segments += chain
        pages = self.pages
        self.suffix += list(itertools.accumulate(pages[seg] for seg in reversed(chain)))[::-1]
        self.stop[rid] = len(self.segments)
        self.lazy[rid] = False
        self.ceiling[rid] = self.end[chain[-1]] if chain else 0


def _private_tails(chains: PrefixChains, page: int) -> tuple[list[int], list[int]]:
    """Per request, where its chain's private tail starts in `segments` and its pages: the
    segments after its last one that another chain shares (only this request ever holds or
    looks at them, so their state can stay implicit until it is preempted)."""
    segments, offsets = chains.segments, chains.offsets
    counts = np.diff(offsets)
    owner = np.repeat(np.arange(chains.size, dtype=np.int64), counts)
    shared = np.bincount(segments, minlength=chains.segment_count)[segments] > 1
    head_end = offsets[:-1].copy()
    np.maximum.at(head_end, owner[shared], np.flatnonzero(shared) + 1)
    # a chain's segments are contiguous (each starts where the one before ends), so the pages
    # of its tail's segments telescope: those up to its last one's end less those before its
    # first one's start
    has_tail = head_end < offsets[1:]
    if not len(segments):
        return head_end.tolist(), [0] * chains.size
    first = segments[np.where(has_tail, head_end, 0)]
    last = segments[np.where(has_tail, offsets[1:] - 1, 0)]
    tail_pages = np.where(has_tail, chains.end[last] // page - chains.start[first] // page, 0)
    return head_end.tolist(), tail_pages.tolist()

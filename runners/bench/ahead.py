"""First-turn requests built ahead, in the load generator's idle time, for the dispatcher.

Where it sits: inside `runners.bench.loadgen.run_benchmark`, between the request list and the
sessions. Building a request (drawing its token ids, encoding the JSON body, making the POST)
is a good part of the load generator's CPU per request. The dispatcher used to build each
session's first request right before its handoff to the send clock, so in a burst of the trace
that work piled up just when the loop had the least time. `Ahead` builds them in send order
whenever the dispatcher waits for the next handoff, one request per loop step so the streamed
responses are still read as they come, and keeps at most `AHEAD_BYTES` of bodies built: a burst
then finds its requests ready. A request not built yet when its time comes is built then.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

import httpx

from runners.workload import BenchRequest

AHEAD_BYTES = 64 * 1024 * 1024  # bodies built and waiting, at most
AHEAD_MIN_IDLE_S = 0.002  # build one more only while the next handoff is at least this far


class Ahead:
    """The requests `roots` (indices into `requests`, in dispatch order) and their POSTs (made
    by `build`), built ahead."""

    def __init__(
        self,
        requests: Sequence[BenchRequest],
        roots: Sequence[int],
        build: Callable[[BenchRequest], httpx.Request],
    ) -> None:
        self._requests = requests
        self._roots = roots
        self._build = build
        self._next = 0  # the first root not built yet
        self._built: deque[tuple[int, BenchRequest, httpx.Request]] = deque()
        self._bytes = 0

    def take(self, root: int) -> tuple[BenchRequest, httpx.Request]:
        """Request `root` (the next root in order) and its POST: built ahead, or built now."""
        if self._built:
            built, request, post = self._built.popleft()
            if built != root:
                raise ValueError(f"request {root} taken out of order (next built: {built})")
            self._bytes -= len(post.content)
            return request, post
        if self._next >= len(self._roots) or self._roots[self._next] != root:
            raise ValueError(f"request {root} taken out of order")
        self._next += 1
        request = self._requests[root]
        return request, self._build(request)

    def build_one(self, handoff: float) -> bool:
        """Build the next root's POST if the next handoff (`time.perf_counter` time) is at least
        `AHEAD_MIN_IDLE_S` away and the budget allows; say whether it did."""
        if self._next >= len(self._roots) or self._bytes >= AHEAD_BYTES:
            return False
        if handoff - time.perf_counter() < AHEAD_MIN_IDLE_S:
            return False
        root = self._roots[self._next]
        request = self._requests[root]
        post = self._build(request)
        self._built.append((root, request, post))
        self._bytes += len(post.content)
        self._next += 1
        return True

"""The send clock: one thread that waits for each request's send time and writes its bytes.

Where it sits: between the load generator (`runners.bench.loadgen.run_benchmark` starts one per
run and names it, with each request's due time, in the request's extensions) and the transport
(`runners.bench.transport.LeanHTTPTransport` hands it a connection's socket and the request's
bytes a few milliseconds before they are due). The event loop also reads every streamed
response, and one loop step may take milliseconds when many responses arrive at once; a send
waiting for its turn on the loop would be that late. This thread does nothing but wait and
write: it sleeps until shortly before a send is due, spins for the last fraction of a
millisecond, takes the time and writes the bytes to the socket, then tells the loop (which goes
on to read the response on its own). The time taken right before the write is the request's
send time. While the clock runs the interpreter switches threads every `SWITCH_INTERVAL_S`
(instead of every 5 ms), so the loop's thread yields the GIL soon after this one asks for it.

A socket that takes only part of the bytes (a server that stopped reading) is not waited for:
the rest goes back to the loop, which writes it as the socket drains, so one stuck connection
never delays the sends after it. A job whose request was cancelled before its time is dropped
unsent. The socket is duplicated for the job, so the loop closing its connection meanwhile never
makes this thread write to a file descriptor reused for something else.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

SPIN_S = 0.0004  # spin (holding the CPU) this long before a send; sleep before that
SWITCH_INTERVAL_S = 0.0001

Done = Callable[[float, int, OSError | None], None]  # (send time, bytes written, error)


@dataclass
class _Job:
    due: float
    fd: int  # a duplicate, closed by the clock once the job is done or dropped
    data: bytes
    done: Done
    cancelled: bool = False
    taken: bool = field(default=False)


class SendClock:
    """A thread writing request bytes at their due times (`time.perf_counter` seconds)."""

    def __init__(self, spin_s: float = SPIN_S) -> None:
        self.spin_s = spin_s
        self._heap: list[tuple[float, int, _Job]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="send-clock", daemon=True)
        self._started = threading.Event()
        self.realtime = False  # whether the thread runs at a real-time priority (once started)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self) -> None:
        """Drop what is still queued and end the thread."""
        with self._cond:
            self._stopping = True
            for _, _, job in self._heap:
                os.close(job.fd)
            self._heap.clear()
            self._cond.notify()
        self._thread.join()

    def submit(self, due: float, fd: int, data: bytes, done: Done) -> _Job:
        """Write `data` to socket `fd` at `due` (at once when past); `done` is called from this
        thread with the send time, the bytes written (the rest is the caller's to write) and
        the error, if any."""
        job = _Job(due, os.dup(fd), data, done)
        with self._cond:
            if self._stopping:
                os.close(job.fd)
                raise RuntimeError("the send clock was stopped")
            heapq.heappush(self._heap, (due, next(self._order), job))
            self._cond.notify()
        return job

    def cancel(self, job: _Job) -> bool:
        """Drop `job` unless its write has begun; say whether it was dropped."""
        with self._cond:
            if job.taken:
                return False
            job.cancelled = True
            return True

    def next_due(self) -> float:
        """When the earliest queued send is due (infinity when none is)."""
        with self._cond:
            return self._heap[0][0] if self._heap else float("inf")

    def _run(self) -> None:
        self.realtime = _realtime_priority()
        self._started.set()
        while True:
            with self._cond:
                if not self._heap:
                    if self._stopping:
                        return
                    self._cond.wait()
                    continue
                due, _, job = self._heap[0]
                if job.cancelled:
                    heapq.heappop(self._heap)
                    os.close(job.fd)
                    continue
                delay = due - time.perf_counter() - self.spin_s
                if delay > 0:
                    self._cond.wait(delay)  # a sooner job may arrive meanwhile
                    continue
                heapq.heappop(self._heap)
                job.taken = True
            while time.perf_counter() < due:
                pass
            self._send(job)

    @staticmethod
    def _send(job: _Job) -> None:
        sent = time.perf_counter()
        written, error = 0, None
        try:
            written = os.write(job.fd, job.data)
        except BlockingIOError:
            pass  # the socket's buffer is full: the loop writes it all as it drains
        except OSError as exc:
            error = exc
        finally:
            os.close(job.fd)
        job.done(sent, written, error)


def _realtime_priority() -> bool:
    """Put the calling thread in the lowest real-time class (SCHED_FIFO 1), so it runs as soon
    as it wakes instead of after whatever else is runnable on its core (the scheduler's wake-up
    delay on a busy machine is several milliseconds). It only sleeps, spins `SPIN_S` and writes,
    so it never holds a core for long. Say whether the system allowed it (it needs root or
    CAP_SYS_NICE on Linux; other systems lack the call)."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:  # EPERM without the privilege: the clock runs at normal priority
        return False
    return True


@contextlib.contextmanager
def running_clock() -> Iterator[SendClock]:
    """A started clock, and the short thread switch interval it needs, for one run."""
    clock = SendClock()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    clock.start()
    try:
        yield clock
    finally:
        clock.stop()
        sys.setswitchinterval(interval)


class LoopTimed(httpx.AsyncBaseTransport):
    """Wraps a transport that cannot hand its writes to a `SendClock` (httpx's own, for https;
    test doubles) so it honours ``send_at`` all the same: it waits for it on the event loop
    (to within a loop step, not the clock's precision) and reports the time it passed the
    request on as ``sent_s``, as `LeanHTTPTransport` does."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        due = request.extensions.get("send_at")
        if due is not None:
            while (delay := float(due) - time.perf_counter()) > 0:
                # the loop's timers round up to the millisecond: the last one is yielded away
                await asyncio.sleep(delay - 0.001 if delay > 0.0015 else 0)
        sent = time.perf_counter()
        response = await self.inner.handle_async_request(request)
        response.extensions["sent_s"] = sent
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

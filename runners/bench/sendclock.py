"""The send clock: a process of its own that waits for each request's send time and writes it.

Where it sits: between the load generator (`runners.bench.loadgen.run_benchmark` starts one per
run and names it, with each request's due time, in the request's extensions) and the transport
(`runners.bench.transport.LeanHTTPTransport` hands it a connection's socket and the request's
bytes well before they are due). The event loop reads every streamed response, and one loop
step may take many milliseconds when hundreds of streams get a token at once; a send waiting
for its turn on the loop would be that late, and a thread would wait for the interpreter lock
the loop holds. So the waiting and writing happen in `runners.bench.clock_process`, a small
process of its own at real-time priority where the system allows it; the load generator only
learns afterwards when each request went out, and reads the response meanwhile on its own.

A socket that takes only part of the bytes (a server that stopped reading) is not waited for:
the rest comes back to the caller, which writes it as the socket drains, so one stuck
connection never delays the sends after it. A cancelled job is dropped unsent if its time has
not come. The clock writes to its own duplicate of the socket, so closing the connection
meanwhile never makes it write to a file descriptor reused for something else.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import itertools
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path

import httpx

from runners.bench.clock_process import CANCEL, HEADER, JOB, RECORD

Done = Callable[[float, int, OSError | None], None]  # (send time, bytes written, error)
_SCRIPT = Path(__file__).with_name("clock_process.py")


class SendClock:
    """The load generator's side of the send clock process (times: `time.perf_counter`)."""

    def __init__(self, realtime: bool = True, cores: Collection[int] = ()) -> None:
        """Start the clock process; `realtime`: ask for a real-time priority (`realtime` then
        says whether the system granted it); `cores`: the CPUs it may run on (by default the
        load generator's). A clock on a core of its own never takes the load generator's core
        away while it files a job or spins to a send time."""
        known = set(range(os.cpu_count() or 1))
        if cores and (not set(cores) <= known or not hasattr(os, "sched_setaffinity")):
            raise ValueError(
                f"send clock cores {sorted(cores)}: this machine has cores {sorted(known)}"
                + ("" if hasattr(os, "sched_setaffinity") else " and cannot pin a process")
            )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        priority = "realtime" if realtime else "normal"
        argv = [sys.executable, "-I", "-S", str(_SCRIPT), str(theirs.fileno()), priority]
        if cores:
            argv.append(",".join(str(core) for core in sorted(cores)))
        self._process = subprocess.Popen(argv, pass_fds=(theirs.fileno(),))
        theirs.close()
        hello = ours.recv(1)
        if hello not in (b"R", b"N"):
            self.close()
            raise RuntimeError("the send clock process did not start")
        self.realtime = hello == b"R"  # whether it runs at a real-time priority
        self._ids = itertools.count()
        self._pending: dict[int, Done | None] = {}
        self._partial = b""
        self.ended = False

    @property
    def pid(self) -> int:
        """The clock process's id."""
        return self._process.pid

    def fileno(self) -> int:
        """Readable when answers have come (`read_answers` handles them)."""
        return self._sock.fileno()

    def submit(self, due: float, fd: int, data: bytes, done: Done) -> int:
        """Write `data` to socket `fd` at `due` (at once when past); `done` is called by
        `read_answers` with the send time, the bytes written (the rest is the caller's to
        write) and the error, if any. Returns the job's id."""
        job = next(self._ids)
        header = HEADER.pack(JOB, job, due, len(data))
        fds = array.array("i", [fd])
        # one call: the socket travels with the header's first byte
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]
        sent = _when_writable(self._sock, lambda: self._sock.sendmsg([header, data], ancillary))
        self._send_rest(memoryview(header + data)[sent:])
        self._pending[job] = done
        return job

    def _send_rest(self, rest: memoryview) -> None:
        """Write all of `rest`, waiting for the clock to drain its end: the event loop may have
        made the socket non-blocking (uvloop does when it watches it for answers), so a large
        body must not meet a full buffer with `sendall`."""
        while rest:
            rest = rest[_when_writable(self._sock, functools.partial(self._sock.send, rest)) :]

    def cancel(self, job: int) -> None:
        """Drop `job` unsent unless its time has come; nothing is called back for it."""
        if self._pending.get(job) is not None:
            self._pending[job] = None
            self._send_rest(memoryview(HEADER.pack(CANCEL, job, 0.0, 0)))

    def outstanding(self) -> int:
        return len(self._pending)

    def read_answers(self) -> None:
        """Handle the answers that have arrived (blocks until at least one byte has). Should
        the clock process end, every job still waiting fails (`ended` is set)."""
        try:
            data = self._partial + self._sock.recv(64 * RECORD.size)
        except OSError:
            data = self._partial
        if len(data) == len(self._partial):
            self.ended = True
            waiting, self._pending = self._pending, {}
            for done in waiting.values():
                if done is not None:
                    done(time.perf_counter(), 0, OSError("the send clock process ended"))
            return
        whole = len(data) - len(data) % RECORD.size
        self._partial = data[whole:]
        for job, sent, written, errno in RECORD.iter_unpack(data[:whole]):
            done = self._pending.pop(job, None)
            if done is not None and written >= 0:
                error = OSError(errno, os.strerror(errno)) if errno else None
                done(sent, written, error)

    def close(self) -> None:
        """End the clock process (queued jobs are dropped)."""
        self._sock.close()
        try:
            self._process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _when_writable(sock: socket.socket, send: Callable[[], int]) -> int:
    """`send()`'s result, retried whenever the socket's buffer is full (a non-blocking socket
    raises then instead of waiting)."""
    while True:
        try:
            return send()
        except BlockingIOError:
            select.select([], [sock], [])


@contextlib.asynccontextmanager
async def running_clock(
    realtime: bool = True, cores: Collection[int] = ()
) -> AsyncIterator[SendClock]:
    """A send clock (`SendClock`'s arguments) whose answers the running event loop handles,
    for one run."""
    clock = SendClock(realtime, cores)
    loop = asyncio.get_running_loop()
    fd = clock.fileno()

    def on_answers() -> None:
        clock.read_answers()
        if clock.ended:
            loop.remove_reader(fd)

    loop.add_reader(fd, on_answers)
    try:
        yield clock
    finally:
        loop.remove_reader(fd)
        clock.close()


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

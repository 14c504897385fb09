"""The send clock's own process: waits for each request's send time and writes its bytes.

Where it sits: started by `runners.bench.sendclock.SendClock` (run as a script by path, so it
imports nothing but the standard library) with one end of a Unix socket pair. The load
generator's process sends it jobs ahead of time: a header (job id, due time, length), the
request's bytes and, attached to the header, a duplicate of the connection's socket. This
process keeps them in a heap, sleeps until `SPIN_S` before the earliest, spins to its due
time, takes the time and writes the bytes to the socket, closes its duplicate and answers with
a record (job id, send time, bytes written, errno). It shares no interpreter lock with the load
generator, whose loop may be busy for milliseconds reading streamed responses, and it asks for
the lowest real-time priority, so on a busy machine it still runs as soon as it wakes. Times are
`time.perf_counter`, which is the system-wide monotonic clock on Linux, so both processes
read the same clock. Its arguments: the socket's file descriptor, then ``realtime`` to ask for
that priority (or ``normal``), then optionally the cores it may run on (``1`` or ``2,3``; by
default those of the load generator); the first byte it writes says whether it runs at that
priority (``R``) or not (``N``). It ends when the load generator closes its end.
"""

from __future__ import annotations

import array
import contextlib
import gc
import heapq
import os
import select
import signal
import socket
import struct
import sys
import time

SPIN_S = 0.0004  # spin this long before a send (a sleep overshoots by up to ~0.1 ms)
JOB, CANCEL = 1, 2
HEADER = struct.Struct("<BQdI")  # kind, job id, due (perf_counter s), byte count
RECORD = struct.Struct("<QdqI4x")  # job id, send time, bytes written (-1: dropped), errno


def realtime_priority() -> bool:
    """The lowest real-time class (SCHED_FIFO 1), where the system allows it."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:  # EPERM without root or CAP_SYS_NICE
        return False
    return True


class Inbox:
    """Jobs and cancels as they arrive, read without ever blocking: a job whose bytes are still
    on their way never holds up the sends due before it. Each job brings one socket; the
    kernel hands it over with the first bytes of the job's header, so they are taken in order.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.fds: list[int] = []

    def read(self) -> list[tuple[int, int, float, bytes, int]]:
        """Messages (kind, job id, due, bytes, socket or -1) completed by what has arrived."""
        fds = array.array("i")
        try:
            data, ancillary, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(64 * 4))
        except BlockingIOError:
            return []
        if not data:
            raise EOFError
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        self.fds.extend(fds)
        self.buffer += data
        messages = []
        while len(self.buffer) >= HEADER.size:
            kind, job, due, size = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + size:
                break
            body = bytes(self.buffer[HEADER.size : HEADER.size + size])
            del self.buffer[: HEADER.size + size]
            fd = self.fds.pop(0) if kind == JOB else -1
            messages.append((kind, job, due, body, fd))
        return messages


def serve(sock: socket.socket) -> None:
    sock.setblocking(False)
    inbox = Inbox(sock)
    heap: list[tuple[float, int]] = []
    jobs: dict[int, tuple[int, bytes]] = {}
    outbox = bytearray()
    while True:
        timeout = None
        if heap:
            timeout = max(heap[0][0] - SPIN_S - time.perf_counter(), 0.0)
        if timeout != 0.0:
            readable, writable, _ = select.select([sock], [sock] if outbox else [], [], timeout)
            if writable:
                del outbox[: sock.send(outbox)]
            if readable:
                try:
                    messages = inbox.read()
                except EOFError:
                    break
                for kind, job, due, body, fd in messages:
                    if kind == JOB:
                        jobs[job] = (fd, body)
                        heapq.heappush(heap, (due, job))
                    elif job in jobs:  # a cancel of a job not yet sent
                        os.close(jobs.pop(job)[0])
                        outbox += RECORD.pack(job, 0.0, -1, 0)
            continue
        due, job = heapq.heappop(heap)
        if job not in jobs:  # cancelled
            continue
        fd, body = jobs.pop(job)
        while time.perf_counter() < due:
            pass
        sent = time.perf_counter()
        written, errno = 0, 0
        try:
            written = os.write(fd, body) if body else 0
        except BlockingIOError:
            pass  # the socket's buffer is full: the load generator writes it all as it drains
        except OSError as exc:
            errno = exc.errno or 0
        finally:
            os.close(fd)
        outbox += RECORD.pack(job, sent, written, errno)
        with contextlib.suppress(BlockingIOError):  # a busy reader: the answer waits
            del outbox[: sock.send(outbox)]
    for fd, _ in jobs.values():
        os.close(fd)
    for fd in inbox.fds:
        os.close(fd)


def main() -> None:
    gc.disable()
    # Ctrl-C reaches the whole process group: the load generator decides, and this process
    # ends when it closes its end (no second traceback from here)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    if len(sys.argv) > 3:  # before anything else runs here, so no send is made elsewhere
        os.sched_setaffinity(0, {int(core) for core in sys.argv[3].split(",")})
    wanted = sys.argv[2] == "realtime"
    sock.sendall(b"R" if wanted and realtime_priority() else b"N")
    try:
        serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the load generator is gone
    finally:
        sock.close()


if __name__ == "__main__":
    main()

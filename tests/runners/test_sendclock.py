"""The send clock process and the load generator's timed sends, over real sockets.

The clock is driven directly (socket pairs stand in for connections) for its own contract:
sends in due order, never early, cancelled jobs never sent, a socket that stops reading or is
closed never holds up the others. Then the load generator against a loopback HTTP server: every
request is sent no earlier than its time, in time order, and a server that answers slowly or
with errors does not move later sends off their times.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from runners.bench.loadgen import LoadConfig, make_client, run_benchmark
from runners.bench.sendclock import Done, SendClock, running_clock
from runners.workload import BenchRequest

Answer = tuple[float, int, OSError | None]


@pytest.fixture
def clock() -> Iterator[SendClock]:
    clock = SendClock()
    try:
        yield clock
    finally:
        clock.close()


def pair() -> tuple[socket.socket, socket.socket]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)  # as the event loop's sockets are
    return ours, peer


def collect(clock: SendClock, answers: dict[int, Answer], key: int) -> Done:
    return lambda sent, written, error: answers.__setitem__(key, (sent, written, error))


def wait_for(clock: SendClock, answers: dict[int, Answer], count: int) -> None:
    while len(answers) < count:
        clock.read_answers()


def test_sends_go_out_in_due_order_and_never_early(clock: SendClock) -> None:
    pairs = [pair() for _ in range(6)]
    start = time.perf_counter() + 0.05
    offsets = [0.030, 0.0, 0.020, 0.010, 0.010, 0.025]  # submitted out of order, one tie
    answers: dict[int, Answer] = {}
    for i, ((ours, _), offset) in enumerate(zip(pairs, offsets, strict=True)):
        clock.submit(start + offset, ours.fileno(), b"request %d" % i, collect(clock, answers, i))
    wait_for(clock, answers, len(pairs))
    for i, (_, peer) in enumerate(pairs):
        sent, written, error = answers[i]
        assert error is None and written == len(b"request %d" % i)
        assert sent >= start + offsets[i]  # never before its time
        assert peer.recv(100) == b"request %d" % i  # whole, on its own connection
    by_sent = sorted(range(len(pairs)), key=lambda i: answers[i][0])
    assert by_sent == sorted(range(len(pairs)), key=lambda i: (offsets[i], i))


def test_a_cancelled_job_is_never_sent(clock: SendClock) -> None:
    (late, late_peer), (soon, soon_peer) = pair(), pair()
    answers: dict[int, Answer] = {}
    job = clock.submit(
        time.perf_counter() + 0.2, late.fileno(), b"never", collect(clock, answers, 0)
    )
    clock.cancel(job)
    clock.submit(time.perf_counter() + 0.3, soon.fileno(), b"sent", collect(clock, answers, 1))
    wait_for(clock, answers, 1)
    assert set(answers) == {1}
    assert soon_peer.recv(100) == b"sent"
    late_peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        late_peer.recv(100)  # nothing came, though its time has passed


def test_a_socket_that_stops_reading_does_not_hold_up_later_sends(clock: SendClock) -> None:
    (stuck, _stuck_peer), (fine, fine_peer) = pair(), pair()
    while True:  # fill the stuck connection's buffers: its peer never reads
        try:
            stuck.send(b"x" * 65536)
        except BlockingIOError:
            break
    answers: dict[int, Answer] = {}
    now = time.perf_counter()
    big = b"y" * 1_000_000
    clock.submit(now + 0.01, stuck.fileno(), big, collect(clock, answers, 0))
    clock.submit(now + 0.02, fine.fileno(), b"next", collect(clock, answers, 1))
    wait_for(clock, answers, 2)
    assert answers[0][1] < len(big) and answers[0][2] is None  # the rest is the caller's
    assert answers[1][1:] == (4, None)
    assert fine_peer.recv(100) == b"next"


def test_a_closed_connection_is_an_error_of_its_own_job_only(clock: SendClock) -> None:
    (gone, gone_peer), (fine, fine_peer) = pair(), pair()
    gone_peer.close()
    answers: dict[int, Answer] = {}
    now = time.perf_counter()
    clock.submit(now + 0.01, gone.fileno(), b"lost", collect(clock, answers, 0))
    clock.submit(now + 0.02, fine.fileno(), b"next", collect(clock, answers, 1))
    wait_for(clock, answers, 2)
    assert isinstance(answers[0][2], OSError)
    assert answers[1][1:] == (4, None)
    assert fine_peer.recv(100) == b"next"


async def serve_sse(log: list[tuple[float, int]]) -> asyncio.Server:
    """A loopback engine: logs (arrival, prompt length); length 2 gets a 500, length 3 answers
    after 300 ms, the others at once with three tokens."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                prompt = json.loads(await reader.readexactly(length))["prompt"]
                log.append((time.perf_counter(), len(prompt)))
                if len(prompt) == 2:
                    body = b'{"error": "boom"}'
                    writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(body))
                    writer.write(body)
                    continue
                if len(prompt) == 3:
                    await asyncio.sleep(0.3)
                chunk = json.dumps({"choices": [{"index": 0, "text": "x"}]}).encode()
                usage = json.dumps({"choices": [], "usage": {"completion_tokens": 3}}).encode()
                body = b"data: %s\n\n" % chunk * 3 + b"data: %s\n\ndata: [DONE]\n\n" % usage
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.usefixtures("event_loop_kind")
def test_requests_go_in_time_order_never_early_and_slow_or_failed_ones_shift_nothing() -> None:
    lengths = [1, 2, 3, 1, 2, 3, 1, 1, 3, 1, 2, 1]
    requests = [BenchRequest(n, 3, prompt_ids=tuple(range(1, n + 1))) for n in lengths]
    times = [0.02 * i for i in range(len(requests))]
    log: list[tuple[float, int]] = []

    async def main():  # type: ignore[no-untyped-def]
        server = await serve_sse(log)
        port = server.sockets[0].getsockname()[1]
        async with server, make_client(timeout_s=10.0) as client:
            config = LoadConfig(f"http://127.0.0.1:{port}/v1", "m")
            return await run_benchmark(client, config, requests, times)

    result = asyncio.run(asyncio.wait_for(main(), 30.0))
    assert [r.success for r in result.results] == [n != 2 for n in lengths]
    assert list(result.intended_s) == times  # failures and slow answers moved nothing
    assert all(late >= 0.0 for late in result.lateness_s())  # never before its time
    starts = [r.start_s for r in result.results]
    assert starts == sorted(starts)
    assert [n for _, n in log] == lengths  # the server got them in that order too


def test_a_clock_asked_for_normal_priority_runs_at_it() -> None:
    clock = SendClock(realtime=False)
    try:
        assert not clock.realtime
        ours, peer = pair()
        answers: dict[int, Answer] = {}
        clock.submit(time.perf_counter(), ours.fileno(), b"ok", collect(clock, answers, 0))
        wait_for(clock, answers, 1)
        assert peer.recv(10) == b"ok"
    finally:
        clock.close()


@pytest.mark.usefixtures("event_loop_kind")
def test_bytes_the_socket_did_not_take_at_its_time_follow_intact() -> None:
    body = bytes(range(256)) * 32_768  # 8 MiB: more than a loopback socket takes at once
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.2)  # not reading while the clock writes
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        received.append(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def main() -> tuple[int, float, float]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, make_client(timeout_s=10.0) as client, running_clock() as clock:
            due = time.perf_counter() + 0.05
            post = client.build_request("POST", f"http://127.0.0.1:{port}/", content=body)
            post.extensions.update(send_clock=clock, send_at=due)
            response = await client.send(post)
            return response.status_code, response.extensions["sent_s"], due

    status, sent, due = asyncio.run(asyncio.wait_for(main(), 30.0))
    assert status == 200 and sent >= due
    assert received == [body]


def test_a_transport_that_cannot_say_when_it_sent_is_an_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="data: [DONE]\n\n")

    async def main() -> None:
        transport = httpx.MockTransport(handle)
        async with httpx.AsyncClient(transport=transport) as client:
            config = LoadConfig("http://x/v1", "m")
            await run_benchmark(client, config, [BenchRequest(1, 1, prompt_ids=(1,))])

    with pytest.raises(TypeError, match="LoopTimed"):
        asyncio.run(main())


@pytest.mark.usefixtures("event_loop_kind")
def test_a_later_turn_is_clocked_after_its_previous_one_and_not_before_its_time() -> None:
    # sessions: 0 -> 1 (1 due at once, so when 0 ends); 2 -> 3 (3 due later than 2 ends);
    # 4 (a 500) -> 5, which is never sent
    lengths = [1, 4, 3, 5, 2, 6]
    requests = [BenchRequest(n, 3, prompt_ids=tuple(range(1, n + 1))) for n in lengths]
    times = [0.0, 0.0, 0.0, 0.5, 0.0, 0.0]
    parents = [-1, 0, -1, 2, -1, 4]
    log: list[tuple[float, int]] = []

    async def main():  # type: ignore[no-untyped-def]
        server = await serve_sse(log)
        port = server.sockets[0].getsockname()[1]
        async with server, make_client(timeout_s=10.0) as client:
            config = LoadConfig(f"http://127.0.0.1:{port}/v1", "m")
            return await run_benchmark(client, config, requests, times, parents=parents)

    result = asyncio.run(asyncio.wait_for(main(), 30.0))
    r = result.results
    assert [x.success for x in r] == [True, True, True, True, False, False]
    assert r[1].start_s >= r[0].start_s + r[0].latency_s  # after its previous turn ended
    assert r[3].start_s >= 0.5 and r[3].start_s >= r[2].start_s + r[2].latency_s
    assert "earlier turn" in r[5].error and 6 not in [n for _, n in log]
    assert all(late >= 0.0 for late in result.lateness_s())


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux CPU affinity")
def test_a_clock_given_cores_runs_only_there_and_still_sends() -> None:
    core = max(os.sched_getaffinity(0))
    clock = SendClock(realtime=False, cores=(core,))
    try:
        assert os.sched_getaffinity(clock.pid) == {core}
        ours, peer = pair()
        answers: dict[int, Answer] = {}
        due = time.perf_counter() + 0.01
        clock.submit(due, ours.fileno(), b"hello", collect(clock, answers, 0))
        wait_for(clock, answers, 1)
        assert answers[0][1:] == (5, None) and peer.recv(16) == b"hello"
    finally:
        clock.close()


def test_unknown_cores_are_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="send clock cores"):
        SendClock(realtime=False, cores=((os.cpu_count() or 1) + 7,))

"""LeanHTTPTransport against a real loopback socket server sending exact bytes.

Every test runs on asyncio and on uvloop (Ray's workers install uvloop), and under a hard
timeout, so a transport that waits for bytes that never come fails the test instead of stalling
the suite for the client's 600 s read timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from runners.bench.loadgen import LoadConfig, RequestResult, make_client, send_one
from runners.bench.transport import LeanHTTPTransport
from runners.process import PortLease
from runners.workload import BenchRequest

pytestmark = pytest.mark.usefixtures("event_loop_kind")  # asyncio and uvloop

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
T = TypeVar("T")
Client = Callable[[httpx.AsyncClient, str], Awaitable[T]]
HARD_TIMEOUT_S = 20.0  # far below the client's default 600 s, far above any test's real need


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def with_length(body: bytes, status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def sse_body(tokens: int) -> bytes:
    events = [
        b"data: " + json.dumps({"choices": [{"index": 0, "text": "x"}]}).encode() + b"\n\n"
        for _ in range(tokens)
    ]
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": tokens}}
    events.append(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    return chunked(*events)


async def write_bytewise(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Worst case for the parser: every byte its own TCP segment."""
    for i in range(len(data)):
        writer.write(data[i : i + 1])
        await writer.drain()
        if i % 7 == 0:
            await asyncio.sleep(0)


async def serve(reply: Reply, body: Client[T], timeout_s: float) -> tuple[T, int]:
    """Run `reply` per connection on a loopback port while `body(client, base_url)` runs."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await reply(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    with PortLease() as lease:
        server = await asyncio.start_server(handle, "127.0.0.1", lease.port)
        async with server, make_client(timeout_s=timeout_s) as client:
            result = await body(client, f"http://127.0.0.1:{lease.port}")
    return result, len(connections)


def run(reply: Reply, body: Client[T], timeout_s: float = 5.0) -> tuple[T, int]:
    return asyncio.run(asyncio.wait_for(serve(reply, body, timeout_s), HARD_TIMEOUT_S))


def get_raises(error: type[httpx.HTTPError]) -> Client[bool]:
    """A client side for `run` that GETs ``/`` and expects `error`."""

    async def body(client: httpx.AsyncClient, base: str) -> bool:
        with pytest.raises(error):
            await client.get(base + "/")
        return True

    return body


def test_runs_on_the_event_loop_it_is_parametrised_with(event_loop_kind: str) -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert asyncio.run(loop_module()).split(".")[0] == event_loop_kind


def test_a_new_connection_is_answered_without_waiting_out_the_600_s_timeout() -> None:
    # on uvloop the protocol once never saw its transport (AssertionError); a fix that wrote
    # anyway waited for a reply that never came: the client's own timeout here is 600 s, so
    # only the hard test timeout would end such a wait
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(with_length(b"ok"))

    async def body(client: httpx.AsyncClient, base: str) -> list[tuple[int, str]]:
        responses = [await client.get(base + "/") for _ in range(2)]
        return [(r.status_code, r.text) for r in responses]

    answers, connections = run(reply, body, timeout_s=600.0)
    assert answers == [(200, "ok")] * 2
    assert connections == 1


def test_streams_sse_split_at_every_byte_and_reuses_the_connection() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await write_bytewise(writer, SSE_HEAD + sse_body(5))

    async def body(client: httpx.AsyncClient, base: str) -> list[RequestResult]:
        config = LoadConfig(base + "/v1", "m")
        request = BenchRequest(3, 5, prompt_ids=(1, 2, 3))
        return [await send_one(client, config, request, 0.0) for _ in range(3)]

    results, connections = run(reply, body)
    assert [(r.success, r.output_len, len(r.itl_s)) for r in results] == [(True, 5, 4)] * 3
    assert connections == 1  # kept alive and reused


def test_connection_is_reused_when_the_last_chunk_comes_after_done() -> None:
    # the client stops reading at "[DONE]"; the server's empty last chunk is a separate write
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(SSE_HEAD + sse_body(3).removesuffix(b"0\r\n\r\n"))
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")

    async def body(client: httpx.AsyncClient, base: str) -> list[RequestResult]:
        config = LoadConfig(base + "/v1", "m")
        request = BenchRequest(3, 3, prompt_ids=(1, 2, 3))
        return [await send_one(client, config, request, 0.0) for _ in range(3)]

    results, connections = run(reply, body)
    assert [(r.success, r.output_len) for r in results] == [(True, 3)] * 3
    assert connections == 1


def test_a_body_left_unfinished_is_never_reused() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(100):  # the body goes on after the reader stopped
                writer.write(chunked(b"more")[:-5])
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")

    async def body(client: httpx.AsyncClient, base: str) -> list[bytes]:
        firsts: list[bytes] = []
        for _ in range(2):
            async with client.stream("GET", base + "/") as response:
                async for piece in response.aiter_raw():
                    firsts.append(piece)
                    break
        return firsts

    firsts, connections = run(reply, body)
    assert firsts == [b"more"] * 2
    assert connections == 2


@pytest.mark.parametrize(
    ("response", "expected", "kept_alive"),
    [
        (with_length(b"hello world"), b"hello world", True),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"hello world",
            True,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
        (b"HTTP/1.1 200 OK\r\n\r\nhello world", b"hello world", False),  # until close
    ],
    ids=["content-length", "chunked-with-trailers", "no-content", "until-close"],
)
def test_each_framing_split_at_every_byte(
    response: bytes, expected: bytes, kept_alive: bool
) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await write_bytewise(writer, response)
            if not kept_alive:
                return  # the body ends where the connection does

    async def body(client: httpx.AsyncClient, base: str) -> list[bytes]:
        return [(await client.get(base + "/")).content for _ in range(2)]

    bodies, connections = run(reply, body)
    assert bodies == [expected] * 2
    assert connections == (1 if kept_alive else 2)


def test_interim_response_in_the_same_segment_as_the_final_one() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + with_length(b"done"))
        await asyncio.sleep(HARD_TIMEOUT_S)  # keeps the connection open

    async def body(client: httpx.AsyncClient, base: str) -> tuple[int, str]:
        response = await client.post(base + "/", content=b"x")
        return response.status_code, response.text

    assert run(reply, body, timeout_s=600.0)[0] == (200, "done")


def test_head_response_has_no_body_and_keeps_the_connection() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        assert head.startswith(b"HEAD ")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")  # no body follows
        await read_request(reader)
        writer.write(with_length(b"hello world"))
        await asyncio.sleep(HARD_TIMEOUT_S)

    async def body(client: httpx.AsyncClient, base: str) -> tuple[bytes, bytes]:
        head = await client.head(base + "/")
        return head.content, (await client.get(base + "/")).content

    (head, got), connections = run(reply, body, timeout_s=600.0)
    assert (head, got, connections) == (b"", b"hello world", 1)


def test_bytes_arriving_on_an_idle_connection_are_never_read_as_the_next_response() -> None:
    first_read, stale_sent = asyncio.Event(), asyncio.Event()
    replies = [0]

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            replies[0] += 1
            writer.write(with_length(b"reply %d" % replies[0]))
            if replies[0] == 1:  # e.g. a 408 some servers send before closing an idle one
                await first_read.wait()
                writer.write(with_length(b"stale", b"408 Request Timeout"))
                await writer.drain()
                stale_sent.set()

    async def body(client: httpx.AsyncClient, base: str) -> list[str]:
        first = await client.get(base + "/")
        first_read.set()  # the connection is idle in the pool now
        await stale_sent.wait()
        await asyncio.sleep(0.2)  # lets the client's loop read the stale bytes
        second = await client.get(base + "/")
        return [first.text, second.text]

    texts, connections = run(reply, body)
    assert texts == ["reply 1", "reply 2"]
    assert connections == 2


def test_error_status_with_content_length_is_a_counted_failure() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        payload = b'{"error": "The model `m` does not exist."}'
        writer.write(with_length(payload, b"404 Not Found"))
        await writer.drain()
        await asyncio.sleep(1)

    async def body(client: httpx.AsyncClient, base: str) -> RequestResult:
        request = BenchRequest(3, 5, prompt_ids=(1, 2, 3))
        return await send_one(client, LoadConfig(base + "/v1", "m"), request, 0.0)

    result, _ = run(reply, body)
    assert not result.success
    assert result.error.startswith("HTTP 404") and "does not exist" in result.error


def test_server_dying_mid_stream_is_a_failure_not_a_hang() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        data = SSE_HEAD + sse_body(5)
        writer.write(data[: len(data) // 2])
        await writer.drain()
        writer.transport.abort()

    async def body(client: httpx.AsyncClient, base: str) -> RequestResult:
        request = BenchRequest(3, 5, prompt_ids=(1, 2, 3))
        return await send_one(client, LoadConfig(base + "/v1", "m"), request, 0.0)

    result, _ = run(reply, body, timeout_s=600.0)
    assert not result.success
    assert "RemoteProtocolError" in result.error


def test_a_reset_cuts_an_until_close_body_short_and_is_an_error() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\npart of the body")
        await writer.drain()
        await asyncio.sleep(0.2)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # closing with a zero linger sends a reset, not a FIN

    assert run(reply, get_raises(httpx.ReadError))[0] is True


def test_server_closing_each_connection_at_once_raises_httpx_errors() -> None:
    # the server runs outside the client's loop, so the close can come before the request is
    # written: uvloop then refused the write with a RuntimeError that no caller expected
    stop = threading.Event()

    def accept_and_close(listener: socket.socket) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                listener.accept()[0].close()

    async def requests(client: httpx.AsyncClient, url: str) -> set[type[Exception]]:
        raised: set[type[Exception]] = set()
        for _ in range(50):  # the close races the request: several tries meet both orders
            with pytest.raises(httpx.TransportError) as info:
                await client.get(url)
            raised.add(type(info.value))
        return raised

    async def main(url: str) -> set[type[Exception]]:
        async with make_client(timeout_s=5.0) as client:
            return await requests(client, url)

    with PortLease() as lease, socket.create_server(("127.0.0.1", lease.port)) as listener:
        listener.settimeout(0.05)
        server = threading.Thread(target=accept_and_close, args=(listener,))
        server.start()
        try:
            url = f"http://127.0.0.1:{lease.port}/"
            raised = asyncio.run(asyncio.wait_for(main(url), HARD_TIMEOUT_S))
        finally:
            stop.set()
            server.join()
    assert raised <= {httpx.RemoteProtocolError, httpx.ReadError}


def test_malformed_status_line_is_a_protocol_error() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"ICY 200 OK\r\n\r\n")
        await asyncio.sleep(HARD_TIMEOUT_S)

    assert run(reply, get_raises(httpx.RemoteProtocolError))[0] is True


def test_body_until_close_and_request_bytes_on_the_wire() -> None:
    seen: list[bytes] = []

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, content = await read_request(reader)
        seen.extend([head, content])
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ")
        await writer.drain()
        writer.write(b"world")
        await writer.drain()

    async def body(client: httpx.AsyncClient, base: str) -> tuple[int, str]:
        response = await client.post(base + "/echo?x=1", json={"a": 1})
        return response.status_code, response.text

    (status, text), _ = run(reply, body)
    assert (status, text) == (200, "hello world")
    assert seen[0].startswith(b"POST /echo?x=1 HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in seen[0].lower()
    assert json.loads(seen[1]) == {"a": 1}


def test_read_timeout_before_the_head_and_refused_connection_raise_httpx_errors() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)  # never answers within the client's timeout

    async def body(client: httpx.AsyncClient, base: str) -> bool:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(base + "/slow", timeout=0.2)
        return True

    assert run(reply, body)[0] is True

    async def refused() -> None:
        with PortLease() as lease:  # held, and nobody listens on it
            async with httpx.AsyncClient(transport=LeanHTTPTransport()) as client:
                with pytest.raises(httpx.ConnectError):
                    await client.get(f"http://127.0.0.1:{lease.port}/")

    asyncio.run(asyncio.wait_for(refused(), HARD_TIMEOUT_S))


def test_read_timeout_mid_body_drops_the_connection() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(HARD_TIMEOUT_S)  # the rest never comes

    async def body(client: httpx.AsyncClient, base: str) -> list[bytes]:
        pieces: list[bytes] = []
        for _ in range(2):  # the second request must not reuse the stalled connection
            with pytest.raises(httpx.ReadTimeout):
                async with client.stream("GET", base + "/", timeout=0.3) as response:
                    async for piece in response.aiter_raw():
                        pieces.append(piece)
        return pieces

    pieces, connections = run(reply, body)
    assert pieces == [b"hello"] * 2
    assert connections == 2


def test_cancelling_a_waiting_request_is_a_cancellation_not_a_read_timeout() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(HARD_TIMEOUT_S)

    async def body(client: httpx.AsyncClient, base: str) -> bool:
        with pytest.raises(TimeoutError):  # asyncio's, from wait_for; httpx's is no TimeoutError
            await asyncio.wait_for(client.get(base + "/"), 0.2)
        return True

    assert run(reply, body)[0] is True

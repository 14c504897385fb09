"""LeanHTTPTransport against a real loopback socket server sending exact bytes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from runners.bench.loadgen import LoadConfig, RequestResult, make_client, send_one
from runners.bench.transport import LeanHTTPTransport
from runners.process import PortLease
from runners.workload import BenchRequest

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
T = TypeVar("T")


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


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


async def serve(
    reply: Reply, body: Callable[[httpx.AsyncClient, str], Awaitable[T]]
) -> tuple[T, int]:
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
        async with server, make_client(timeout_s=5.0) as client:
            result = await body(client, f"http://127.0.0.1:{lease.port}")
    return result, len(connections)


def run(reply: Reply, body: Callable[[httpx.AsyncClient, str], Awaitable[T]]) -> tuple[T, int]:
    return asyncio.run(serve(reply, body))


def test_streams_sse_split_at_every_byte_and_reuses_the_connection() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            data = SSE_HEAD + sse_body(5)
            for i in range(len(data)):  # worst case: every byte its own TCP segment
                writer.write(data[i : i + 1])
                await writer.drain()
                if i % 7 == 0:
                    await asyncio.sleep(0)

    async def body(client: httpx.AsyncClient, base: str) -> list[RequestResult]:
        config = LoadConfig(base + "/v1", "m")
        request = BenchRequest(3, 5, prompt_ids=(1, 2, 3))
        return [await send_one(client, config, request, 0.0) for _ in range(3)]

    results, connections = run(reply, body)
    assert [(r.success, r.output_len, len(r.itl_s)) for r in results] == [(True, 5, 4)] * 3
    assert connections == 1  # kept alive and reused


def test_error_status_with_content_length_is_a_counted_failure() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        payload = b'{"error": "The model `m` does not exist."}'
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )
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

    result, _ = run(reply, body)
    assert not result.success
    assert "RemoteProtocolError" in result.error


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


def test_read_timeout_and_refused_connection_raise_httpx_errors() -> None:
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

    asyncio.run(refused())

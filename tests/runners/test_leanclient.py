"""The load generator's client shortcut (`runners.bench.leanclient`) changes nothing a server or
the load generator can see: the same request bytes as httpx's own path, compressed bodies still
decoded, client hooks still called, a closed client still refused. Real loopback server; every
test runs on asyncio and on uvloop.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import pytest

from runners.bench.leanclient import LeanClient, new_post, open_stream
from runners.bench.loadgen import LoadConfig, RequestResult, make_client, send_one
from runners.workload import BenchRequest
from tests.runners.test_transport import SSE_HEAD, Reply, chunked, read_request, run, sse_body

pytestmark = pytest.mark.usefixtures("event_loop_kind")  # asyncio and uvloop

HEADERS = {"Content-Type": "application/json"}


def recording(heads: list[bytes], bodies: list[bytes]) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            heads.append(head)
            bodies.append(body)
            writer.write(SSE_HEAD + sse_body(2))
            await writer.drain()

    return reply


def test_direct_path_writes_the_same_request_as_httpx() -> None:
    heads: list[bytes] = []
    bodies: list[bytes] = []

    async def body(client: httpx.AsyncClient, base: str) -> list[bytes]:
        assert isinstance(client, LeanClient)
        url = base + "/v1/completions"
        direct = new_post(client, url, HEADERS, b'{"a":1}')
        response, pieces = await open_stream(client, direct)
        got = b"".join([piece async for piece in pieces])
        await response.aclose()
        via_httpx = client.build_request("POST", url, headers=HEADERS, content=b'{"a":1}')
        again = await client.send(via_httpx, stream=True)
        got_again = await again.aread()
        await again.aclose()
        return [got, got_again]

    texts, _ = run(recording(heads, bodies), body)
    assert texts[0] == texts[1] and b"[DONE]" in texts[0]
    assert heads[0] == heads[1] and bodies == [b'{"a":1}', b'{"a":1}']
    assert b"content-length: 7" in heads[0].lower()


def test_compressed_stream_is_decoded_on_the_direct_path() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        events = b"".join(
            b"data: " + json.dumps(event).encode() + b"\n\n"
            for event in (
                {"choices": [{"index": 0, "text": "x"}]},
                {"choices": [{"index": 0, "text": "y"}]},
                {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
            )
        )
        packed = gzip.compress(events + b"data: [DONE]\n\n")
        head = SSE_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
        writer.write(head + chunked(packed[:10], packed[10:]))
        await writer.drain()
        await asyncio.sleep(1)

    async def body(client: httpx.AsyncClient, base: str) -> RequestResult:
        request = BenchRequest(3, 2, prompt_ids=(1, 2, 3))
        return await send_one(client, LoadConfig(base + "/v1", "m"), request, 0.0)

    result, _ = run(reply, body)
    assert result.success and result.output_len == 2


def test_client_hooks_still_run() -> None:
    seen: list[int] = []

    async def hook(response: httpx.Response) -> None:
        seen.append(response.status_code)

    async def body(client: httpx.AsyncClient, base: str) -> bool:
        client.event_hooks = {"request": [], "response": [hook]}
        request = BenchRequest(3, 2, prompt_ids=(1, 2, 3))
        result = await send_one(client, LoadConfig(base + "/v1", "m"), request, 0.0)
        return result.success

    ok, _ = run(recording([], []), body)
    assert ok and seen == [200]


def test_closed_client_refuses() -> None:
    async def main() -> None:
        client = make_client(timeout_s=5.0)
        request = new_post(client, "http://127.0.0.1:9/v1/completions", HEADERS, b"{}")
        await client.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await open_stream(client, request)

    asyncio.run(main())

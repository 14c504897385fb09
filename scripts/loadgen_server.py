"""The minimal streaming server of scripts/bench_loadgen.py's capacity sweep (``--serve``).

Where it sits: bench_loadgen.py starts it as its own process pinned to one core. Raw asyncio,
no framework: it answers every completion with a first token exactly ``ttft`` after the request
arrived and then one token every ``itl``, on a fixed schedule, and reports its own lateness at
``GET /stats`` (``/stats?reset`` clears it), so a level limited by the server is visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
from dataclasses import dataclass

import numpy as np


@dataclass
class _ServerStats:
    lateness_s: list[float]
    requests: int = 0


@dataclass
class _Stream:
    """One response being streamed: chunk `sent` of `tokens` is due at `start + sent * itl`."""

    writer: asyncio.StreamWriter
    start_s: float
    tokens: int
    chat: bool
    done: asyncio.Future[None]
    sent: int = 0


def _chunk(stream: _Stream) -> bytes:
    kind = "chat.completion.chunk" if stream.chat else "text_completion"
    choice = (
        {"index": 0, "delta": {"content": " x"}, "finish_reason": None}
        if stream.chat
        else {"index": 0, "text": " x", "finish_reason": None}
    )
    data = f"data: {json.dumps({'id': 'c', 'object': kind, 'choices': [choice]})}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


def _final(stream: _Stream) -> bytes:
    kind = "chat.completion.chunk" if stream.chat else "text_completion"
    n = stream.tokens
    usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
    final = json.dumps({"id": "c", "object": kind, "choices": [], "usage": usage})
    data = f"data: {final}\n\ndata: [DONE]\n\n".encode()
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


class _Ticker:
    """Writes every stream's chunks at their due times from one loop.

    It sleeps until about a millisecond before the next due chunk and then yields to the event
    loop (``sleep(0)``) until the exact time, so chunks leave within microseconds of schedule
    (the event loop's own timers are rounded to the millisecond). Its own lateness is recorded.
    """

    def __init__(self, itl_s: float, stats: _ServerStats) -> None:
        self.itl_s = itl_s
        self.stats = stats
        self.heap: list[tuple[float, int, _Stream]] = []
        self.wake = asyncio.Event()
        self.seq = 0

    def add(self, stream: _Stream) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (stream.start_s, self.seq, stream))
        self.wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.heap:
                self.wake.clear()
                await self.wake.wait()
                continue
            delay = self.heap[0][0] - loop.time()
            if delay > 0.0015:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay - 0.0012)
                continue
            if delay > 0:
                await asyncio.sleep(0)
                continue
            now = loop.time()
            while self.heap and self.heap[0][0] <= now:
                due, _, stream = heapq.heappop(self.heap)
                self.stats.lateness_s.append(now - due)
                stream.writer.write(_chunk(stream))
                stream.sent += 1
                if stream.sent < stream.tokens:
                    self.seq += 1
                    next_due = stream.start_s + stream.sent * self.itl_s
                    heapq.heappush(self.heap, (next_due, self.seq, stream))
                else:
                    stream.writer.write(_final(stream))
                    if not stream.done.done():
                        stream.done.set_result(None)
            await asyncio.sleep(0)


async def _handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ttft_s: float,
    ticker: _Ticker,
    stats: _ServerStats,
) -> None:
    loop = asyncio.get_running_loop()
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            arrived = loop.time()
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            if method == "GET":
                if path.startswith("/stats"):
                    late = np.array(stats.lateness_s or [0.0]) * 1000.0
                    payload = json.dumps(
                        {
                            "requests": stats.requests,
                            "chunks": len(stats.lateness_s),
                            "mean_late_ms": float(late.mean()),
                            "p99_late_ms": float(np.percentile(late, 99)),
                        }
                    ).encode()
                    if "reset" in path:
                        stats.lateness_s.clear()
                        stats.requests = 0
                elif path.startswith("/v1/models"):
                    payload = b'{"object":"list","data":[{"id":"fake","object":"model"}]}'
                else:
                    payload = b"{}"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
                continue
            request = json.loads(body or b"{}")
            tokens = int(request.get("max_completion_tokens") or request.get("max_tokens") or 16)
            stats.requests += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            stream = _Stream(
                writer,
                arrived + ttft_s,
                max(1, tokens),
                path.endswith("/chat/completions"),
                loop.create_future(),
            )
            ticker.add(stream)
            await stream.done
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def _serve(port: int, ttft_s: float, itl_s: float) -> None:
    stats = _ServerStats([])
    ticker = _Ticker(itl_s, stats)
    task = asyncio.create_task(ticker.run())
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, ttft_s, ticker, stats), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()
    task.cancel()


def serve_main(port: int, ttft_ms: float, itl_ms: float) -> None:
    asyncio.run(_serve(port, ttft_ms / 1000.0, itl_ms / 1000.0))

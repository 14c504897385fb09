"""The async load generator: sends `BenchRequest`s to an OpenAI-compatible server and times them.

Second stage of a real benchmark (after `runners.workload`, before
`runners.bench.metrics.summarize`): requests are dispatched in order at their send times (all at
once, Poisson or gamma arrivals), each waits for the client-side concurrency semaphore (closed
loop), then streams its completion. Timing follows `vllm bench serve` exactly:
the clock starts right before the POST (after the semaphore), TTFT is the first SSE chunk that
has ``choices``, ITLs are the gaps between such chunks (SSE events are split from the raw byte
stream as vLLM's client splits them, cheaper per chunk than line iteration), latency ends at the
last one, output tokens come from the usage chunk. Send times are kept to well under a
millisecond (the loop's timers alone round up to one). Failures (HTTP status, exceptions, no
content chunk) are counted, never dropped. Warm-up requests run before the clock starts and are
not recorded. The HTTP client is passed in (`make_client` builds a suitable one), so tests can
use any transport.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx
import numpy as np

from runners.bench.records import RequestRecords
from runners.bench.transport import LeanHTTPTransport
from runners.workload import BenchRequest

Endpoint = Literal["completions", "chat"]


@dataclass(frozen=True)
class LoadConfig:
    """Where and how to send: base URL (``http://host:port/v1``), model name, endpoint."""

    base_url: str
    model: str
    endpoint: Endpoint = "completions"
    ignore_eos: bool = True
    num_warmups: int = 0
    max_concurrency: int | None = None
    request_timeout_s: float = 600.0
    extra_body: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class RequestResult:
    """What one request measured; times in seconds, `start_s` relative to the run's start."""

    success: bool
    prompt_len: int
    output_len: int
    start_s: float
    ttft_s: float
    latency_s: float
    itl_s: tuple[float, ...]
    error: str = ""


@dataclass(frozen=True)
class BenchResult:
    """All requests of one run in dispatch order, and the run's duration."""

    results: tuple[RequestResult, ...]
    duration_s: float
    request_rate: float
    burstiness: float
    max_concurrency: int | None

    def records(self) -> RequestRecords:
        ok = [r.success for r in self.results]
        itl = [gap for r in self.results if r.success for gap in r.itl_s]
        return RequestRecords(
            prompt_len=np.array([r.prompt_len for r in self.results], dtype=np.int64),
            output_len=np.array([r.output_len for r in self.results], dtype=np.int64),
            success=np.array(ok, dtype=np.bool_),
            start_s=np.array([r.start_s for r in self.results], dtype=np.float64),
            ttft_s=np.array([r.ttft_s for r in self.results], dtype=np.float64),
            e2el_s=np.array([r.latency_s for r in self.results], dtype=np.float64),
            itl_s=np.array(itl, dtype=np.float64),
            duration_s=self.duration_s,
        )


def make_client(timeout_s: float = 600.0) -> httpx.AsyncClient:
    """An AsyncClient without a connection cap or proxies; plain-HTTP URLs (engines) go through
    `LeanHTTPTransport`, which keeps per-request and per-chunk CPU low enough for one core to
    time hundreds of streams a second; https keeps httpx's own transport."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=30.0),
        transport=LeanHTTPTransport(),
        mounts={
            "https://": httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
            )
        },
        trust_env=False,
    )


def _payload(config: LoadConfig, request: BenchRequest) -> dict[str, object]:
    body: dict[str, object] = {
        "model": config.model,
        "max_tokens": request.output_len,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if config.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": request.prompt_for_chat()}]
        body["max_completion_tokens"] = request.output_len
    else:
        body["prompt"] = request.prompt_for_completions()
    if config.ignore_eos:
        body["ignore_eos"] = True
    body.update(dict(config.extra_body))
    return body


async def send_one(
    client: httpx.AsyncClient, config: LoadConfig, request: BenchRequest, origin_s: float
) -> RequestResult:
    """Stream one request and time it like `vllm bench serve`'s OpenAI backends."""
    path = "/chat/completions" if config.endpoint == "chat" else "/completions"
    body = _payload(config, request)
    prompt_len = request.prompt_len
    output_len = 0
    chunks = 0
    ttft = 0.0
    itl: list[float] = []
    st = time.perf_counter()
    last = st
    try:
        async with client.stream("POST", config.base_url + path, json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", errors="replace")
                error = f"HTTP {response.status_code}: {text[:500]}"
                return RequestResult(False, prompt_len, 0, st - origin_s, 0.0, 0.0, (), error)
            buffer = b""
            done = False
            async for piece in response.aiter_bytes():
                buffer += piece.replace(b"\r\n", b"\n") if b"\r" in piece else piece
                while not done and (end := buffer.find(b"\n\n")) >= 0:
                    message = buffer[:end].strip()
                    buffer = buffer[end + 2 :]
                    if not message.startswith(b"data:"):
                        continue  # SSE comments and other fields
                    data = message[5:].strip()
                    if data == b"[DONE]":
                        done = True
                        break
                    chunk = json.loads(data)
                    if chunk.get("choices"):
                        now = time.perf_counter()
                        if chunks == 0:
                            ttft = now - st
                        else:
                            itl.append(now - last)
                        last = now
                        chunks += 1
                    usage = chunk.get("usage")
                    if usage:
                        output_len = int(usage.get("completion_tokens") or 0)
                        prompt_len = int(usage.get("prompt_tokens") or prompt_len)
                if done:
                    break
    except (httpx.HTTPError, ValueError, TypeError, AttributeError, OSError) as exc:
        # ValueError covers JSONDecodeError; TypeError and AttributeError are well-formed JSON
        # of the wrong shape (a list or a string as a chunk, a usage count that is no number)
        return RequestResult(
            False, prompt_len, 0, st - origin_s, 0.0, 0.0, (), f"{type(exc).__name__}: {exc}"
        )
    if chunks == 0:
        return RequestResult(
            False,
            prompt_len,
            0,
            st - origin_s,
            0.0,
            0.0,
            (),
            "Never received a valid chunk to calculate TTFT.",
        )
    return RequestResult(
        True, prompt_len, output_len or chunks, st - origin_s, ttft, last - st, tuple(itl)
    )


async def run_benchmark(
    client: httpx.AsyncClient,
    config: LoadConfig,
    requests: Sequence[BenchRequest],
    send_times_s: Sequence[float] | None = None,
    request_rate: float = math.inf,
    burstiness: float = 1.0,
) -> BenchResult:
    """Warm up, then dispatch every request at its send time and wait for all of them."""
    if send_times_s is not None and len(send_times_s) != len(requests):
        raise ValueError(f"{len(send_times_s)} send times for {len(requests)} requests")
    for _ in range(config.num_warmups):
        await send_one(client, config, requests[0], time.perf_counter())
    semaphore = (
        asyncio.Semaphore(config.max_concurrency) if config.max_concurrency is not None else None
    )

    async def limited(request: BenchRequest, origin: float) -> RequestResult:
        if semaphore is None:
            return await send_one(client, config, request, origin)
        async with semaphore:
            return await send_one(client, config, request, origin)

    origin = time.perf_counter()
    tasks: list[asyncio.Task[RequestResult]] = []
    for index, request in enumerate(requests):
        if send_times_s is not None:
            due = origin + send_times_s[index]
            # the event loop's timers are rounded up to the millisecond: sleep to about a
            # millisecond before the send time, then yield until it (sub-ms dispatch)
            while (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay - 0.001 if delay > 0.0015 else 0)
        tasks.append(asyncio.create_task(limited(request, origin)))
    results = await asyncio.gather(*tasks)
    duration = time.perf_counter() - origin
    return BenchResult(tuple(results), duration, request_rate, burstiness, config.max_concurrency)


def run_benchmark_sync(
    config: LoadConfig,
    requests: Sequence[BenchRequest],
    send_times_s: Sequence[float] | None = None,
    request_rate: float = math.inf,
    burstiness: float = 1.0,
) -> BenchResult:
    """`run_benchmark` with its own event loop and client, for synchronous callers."""

    async def main() -> BenchResult:
        async with make_client(config.request_timeout_s) as client:
            return await run_benchmark(
                client, config, requests, send_times_s, request_rate, burstiness
            )

    return asyncio.run(main())


def extra_body(values: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    return tuple(values.items())

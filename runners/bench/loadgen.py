"""The async load generator: sends `BenchRequest`s to an OpenAI-compatible server and times them.

Second stage of a real benchmark (after `runners.workload`, before
`runners.bench.metrics.summarize`): sessions are dispatched in order at their first turn's send
time (all at once, Poisson or gamma arrivals, a trace's times), each waits for the client-side
concurrency semaphore (closed loop) and keeps its slot until its last turn; a later turn is sent
when the previous one has finished, but not before its own send time, and a failed turn fails
the rest of its session unsent (a request without `parents` is a session of one turn). This is
exactly how the simulator's client plays a request list (`runners.sim.replica`). `BenchResult`
keeps each request's intended send time next to its actual one (the send log). Timing follows
`vllm bench serve` exactly:
the clock starts at the request's send time (after the semaphore), TTFT is the first SSE chunk that
has ``choices``, ITLs are the gaps between such chunks (SSE events are split from the raw byte
stream as vLLM's client splits them, cheaper per chunk than line iteration), latency ends at the
last one, output tokens come from the usage chunk. The send time is the moment the request's
bytes are handed to the socket, taken by the send clock (`runners.bench.sendclock`), a process
of its own that waits for each send time and writes: each session builds its request ahead of
time and hands it over `HANDOFF_LEAD_S` early (a later turn as soon as its previous one ends),
so the event loop, busy for many milliseconds when hundreds of streams get a token at once,
never stands between a request and its time. No garbage collection pauses the reading
(`_collections_between_sends`; young garbage only while no handoff is due).
Failures (HTTP status, exceptions, no content chunk) are counted, never dropped. Warm-up
requests run before the clock starts and are not recorded. The HTTP client is passed in
(`make_client` builds a suitable one), so tests can use any transport that says when it sent
each request (`sendclock.LoopTimed` wraps one that cannot).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx
import numpy as np

from runners.bench.records import RequestRecords
from runners.bench.sendclock import LoopTimed, SendClock, running_clock
from runners.bench.transport import LeanHTTPTransport
from runners.phases import report_phase
from runners.workload import BenchRequest

Endpoint = Literal["completions", "chat"]
JSON_HEADERS = {"Content-Type": "application/json"}
GC_IDLE_S = 0.004
HANDOFF_LEAD_S = 0.1  # how long before its send time a request goes to the send clock


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
    realtime_sends: bool = True  # ask the system to run the send clock at real-time priority


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
    """All requests of one run in request-list order, and the run's duration.

    `intended_s` is when each request was due (its send time, or later when its previous turn
    finished after it), relative to the run's start like `RequestResult.start_s`; a turn never
    sent because an earlier one failed has NaN. `realtime_sends` is whether the send clock ran
    at a real-time priority (None: no send clock, e.g. a result read back from a file).
    """

    results: tuple[RequestResult, ...]
    duration_s: float
    request_rate: float
    burstiness: float
    max_concurrency: int | None
    intended_s: tuple[float, ...] = ()
    realtime_sends: bool | None = None

    def lateness_s(self) -> list[float]:
        """Actual minus intended send time of every request that was sent."""
        return [
            r.start_s - due
            for r, due in zip(self.results, self.intended_s, strict=True)
            if math.isfinite(due)
        ]

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
            "https://": LoopTimed(
                httpx.AsyncHTTPTransport(
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
                )
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
        body["messages"] = request.chat_messages()
        body["max_completion_tokens"] = request.output_len
    else:
        body["prompt"] = request.prompt_for_completions()
    if config.ignore_eos:
        body["ignore_eos"] = True
    body.update(dict(config.extra_body))
    return body


@contextlib.asynccontextmanager
async def _streamed(
    client: httpx.AsyncClient, post: httpx.Request
) -> AsyncIterator[httpx.Response]:
    """`client.stream` for a request built already."""
    response = await client.send(post, stream=True)
    try:
        yield response
    finally:
        await response.aclose()


def encode_request(config: LoadConfig, request: BenchRequest) -> bytes:
    """The JSON body of one request, encoded ahead of its send time (a long token-id prompt
    takes a millisecond or more to encode)."""
    return json.dumps(_payload(config, request), separators=(",", ":")).encode()


def build_post(
    client: httpx.AsyncClient, config: LoadConfig, request: BenchRequest, body: bytes | None = None
) -> httpx.Request:
    """The POST of one request (`body`: its `encode_request`, made now when not given), built
    ahead of its send time: httpx's URL merging and header handling take a good part of a
    millisecond, which would otherwise be spent between the wait and the send."""
    path = "/chat/completions" if config.endpoint == "chat" else "/completions"
    content = body if body is not None else encode_request(config, request)
    return client.build_request(
        "POST", config.base_url + path, content=content, headers=JSON_HEADERS
    )


async def send_one(
    client: httpx.AsyncClient,
    config: LoadConfig,
    request: BenchRequest,
    origin_s: float,
    body: bytes | httpx.Request | None = None,
    due: tuple[SendClock, float] | None = None,
) -> RequestResult:
    """Stream one request (`body`: its `build_post`, or its `encode_request`, made now when
    not given) and time it like `vllm bench serve`'s OpenAI backends; `due` = (clock, time):
    the transport sends it at that `time.perf_counter` time (on that clock when it can)."""
    post = body if isinstance(body, httpx.Request) else build_post(client, config, request, body)
    if due is not None:
        post.extensions["send_clock"], post.extensions["send_at"] = due
    prompt_len = request.prompt_len
    output_len = 0
    chunks = 0
    ttft = 0.0
    itl: list[float] = []
    st = time.perf_counter() if due is None else max(time.perf_counter(), due[1])
    last = st
    untimed = False
    try:
        async with _streamed(client, post) as response:
            sent = response.extensions.get("sent_s")
            if sent is None and due is not None:
                untimed = True
                raise httpx.UnsupportedProtocol("no send time")
            st = last = st if sent is None else float(sent)
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
        if untimed:  # the client's fault, not the server's: no request can be timed
            raise TypeError(
                f"the HTTP transport for {post.url} did not say when it sent the request "
                "(no 'sent_s' response extension): wrap it in runners.bench.sendclock.LoopTimed"
            ) from None
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
    parents: Sequence[int] | None = None,
) -> BenchResult:
    """Warm up, then play every session (`parents`: previous turn per request, -1 = first)
    from its send times and wait for all of them."""
    n = len(requests)
    times = [0.0] * n if send_times_s is None else [float(t) for t in send_times_s]
    if len(times) != n:
        raise ValueError(f"{len(times)} send times for {n} requests")
    next_turn = _next_turns(parents, n)
    roots = [i for i in range(n) if parents is None or parents[i] < 0]
    for _ in range(config.num_warmups):
        await send_one(client, config, requests[0], time.perf_counter())
    report_phase("measuring")
    semaphore = (
        asyncio.Semaphore(config.max_concurrency) if config.max_concurrency is not None else None
    )
    results: list[RequestResult | None] = [None] * n
    intended = [math.nan] * n

    async def session(
        root: int, first: BenchRequest, body: httpx.Request, origin: float, clock: SendClock
    ) -> None:
        if semaphore is not None:
            await semaphore.acquire()
        try:
            rid, request, free_at = root, first, origin
            while True:
                due = max(origin + times[rid], free_at)
                await asyncio.sleep(max(due - HANDOFF_LEAD_S - time.perf_counter(), 0.0))
                intended[rid] = max(times[rid], free_at - origin)
                result = await send_one(client, config, request, origin, body, (clock, due))
                results[rid] = result
                following = next_turn[rid]
                if following < 0:
                    return
                if not result.success:
                    _fail_rest(results, next_turn, following, requests, result)
                    return
                free_at = time.perf_counter()
                rid, request = following, requests[following]
                body = build_post(client, config, request)
        finally:
            if semaphore is not None:
                semaphore.release()

    tasks: list[asyncio.Task[None]] = []
    async with running_clock(config.realtime_sends) as clock:
        with _collections_between_sends():
            # the run starts one lead from now, so even the first sends reach the clock early
            origin = time.perf_counter() + HANDOFF_LEAD_S
            for root in roots:
                first = requests[root]  # built and encoded ahead of its send time
                body = build_post(client, config, first)
                # each session hands its request to the send clock (a process that waits for
                # the time and writes) well before it is due; the loop reads the responses
                handoff = origin + times[root] - HANDOFF_LEAD_S
                if handoff - time.perf_counter() > GC_IDLE_S:
                    gc.collect(1)  # young garbage only, while no handoff is due
                await asyncio.sleep(max(handoff - time.perf_counter(), 0.0))
                tasks.append(asyncio.create_task(session(root, first, body, origin, clock)))
            await asyncio.gather(*tasks)
            duration = time.perf_counter() - origin
    done = tuple(r for r in results if r is not None)
    assert len(done) == n
    return BenchResult(
        done,
        duration,
        request_rate,
        burstiness,
        config.max_concurrency,
        tuple(intended),
        clock.realtime,
    )


@contextlib.contextmanager
def _collections_between_sends() -> Iterator[None]:
    """No garbage collection pauses while requests are due (as `vllm bench serve` freezes the
    objects made before the run): what exists is frozen, automatic collection is off, and the
    dispatcher collects young garbage itself when the next send is more than `GC_IDLE_S`
    away; everything is restored afterwards."""
    gc.collect()
    gc.freeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


async def _until(due: float) -> None:
    """Sleep until `due` (perf_counter seconds). The event loop's timers are rounded up to the
    millisecond: sleep to about a millisecond before, then yield until it (sub-ms sends)."""
    while (delay := due - time.perf_counter()) > 0:
        await asyncio.sleep(delay - 0.001 if delay > 0.0015 else 0)


def _next_turns(parents: Sequence[int] | None, n: int) -> list[int]:
    """The next turn of each request's session (-1 = none)."""
    following = [-1] * n
    if parents is None:
        return following
    if len(parents) != n:
        raise ValueError(f"{len(parents)} parents for {n} requests")
    for index, parent in enumerate(parents):
        if parent >= 0:
            if following[parent] >= 0:
                raise ValueError(f"request {parent} is the previous turn of two requests")
            following[parent] = index
    return following


def _fail_rest(
    results: list[RequestResult | None],
    next_turn: list[int],
    rid: int,
    requests: Sequence[BenchRequest],
    failed: RequestResult,
) -> None:
    """The turns after a failed one are never sent; they fail with it."""
    while rid >= 0:
        error = f"an earlier turn of the session failed: {failed.error}"[:500]
        results[rid] = RequestResult(
            False, requests[rid].prompt_len, 0, failed.start_s, 0.0, 0.0, (), error
        )
        rid = next_turn[rid]


def run_benchmark_sync(
    config: LoadConfig,
    requests: Sequence[BenchRequest],
    send_times_s: Sequence[float] | None = None,
    request_rate: float = math.inf,
    burstiness: float = 1.0,
    parents: Sequence[int] | None = None,
) -> BenchResult:
    """`run_benchmark` with its own event loop and client, for synchronous callers."""

    async def main() -> BenchResult:
        async with make_client(config.request_timeout_s) as client:
            return await run_benchmark(
                client, config, requests, send_times_s, request_rate, burstiness, parents
            )

    return asyncio.run(main())


def extra_body(values: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    return tuple(values.items())

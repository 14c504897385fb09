"""A lean HTTP/1.1 transport for httpx, so one client core can time hundreds of streams a second.

Where it sits: under the load generator (`runners.bench.loadgen.make_client` mounts it for
``http://`` URLs; ``https://`` keeps httpx's own transport). httpx's default stack (httpcore's
pool, h11, anyio) costs about 2 ms of CPU per streamed request and 40 us per chunk on these
machines, so a client on one core fell behind its own schedule at 200 requests/s, where
`vllm bench serve`'s aiohttp client still kept its timing error under 1 ms at 400. This transport
speaks HTTP/1.1 over an `asyncio.Protocol`: requests are written in one call, the status line,
headers and body (Content-Length, chunked, or until close) are parsed from the bytes as they
arrive, and idle keep-alive connections are kept per host in a LIFO list, so taking one is O(1).
It assumes no callback order beyond asyncio's Protocol contract, so it behaves the same on
asyncio's own loop and on uvloop (which Ray installs in its workers); every wait has the timeout
httpx asked for, and a connection that closes or fails wakes its waiter.
A request whose extensions name a ``send_clock`` and a ``send_at`` time is written by that
clock (`runners.bench.sendclock`) at that time, not by the loop; every response says when its
request went out (the ``sent_s`` extension).
It implements httpx's `AsyncBaseTransport` contract (an `httpx.Response` whose stream yields the
raw body; httpx still builds requests, decodes content encodings and raises its own exceptions:
`ConnectError`, `ConnectTimeout`, `ReadTimeout`, `RemoteProtocolError`, `ReadError`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httpx

from runners.bench.sendclock import SendClock

_HEAD, _BODY, _DONE = 0, 1, 2
_MAX_HEAD_BYTES = 64 * 1024
# How long a body the reader stopped early (an SSE client at "[DONE]") may take to end, so its
# connection can be reused: servers write a chunked body's last chunk separately, and whether
# it arrived before the reader stopped depends on the event loop's callback order
_FINISH_GRACE_S = 0.25


def _cancelling() -> bool:
    """Is the current task itself being cancelled (not just a timed-out waiter of ours)?"""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Connection(asyncio.Protocol):
    """One TCP connection; parses one response at a time and queues its body pieces."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.fd = -1  # the socket's file descriptor, for a `SendClock` to write to
        self.buffer = bytearray()
        self.state = _DONE
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.framing = "close"  # "length", "chunked" or "close"
        self.remaining = 0  # bytes left of the body ("length") or of the current chunk
        self.in_chunk = False  # "chunked": inside a chunk's data (else expecting a size line)
        self.trailers = False  # "chunked": the last chunk came; reading trailers to the blank line
        self.parts: deque[bytes] = deque()
        self.error: Exception | None = None
        self.closed = False
        self.bodiless = False  # the request was HEAD: the response has a head only
        self.waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it, so no
        # isinstance check: an exception raised here is only logged by the loop, and uvloop then
        # never starts reading from the connection
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.state == _DONE:  # bytes no request asked for: the connection is out of step
            self.keep_alive = False
            self.close()
            return
        try:
            while self.state == _HEAD and self._parse_head():
                pass  # a parsed interim 1xx head: the final head may be in the buffer already
            if self.state == _BODY:
                self._parse_body()
        except ValueError as exc:
            self.error = httpx.RemoteProtocolError(f"malformed HTTP response: {exc}")
            self.keep_alive = False
            self.close()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.state == _BODY and self.framing == "close" and exc is None:
            if self.buffer:
                self.parts.append(bytes(self.buffer))
                self.buffer.clear()
            self.state = _DONE
        elif self.state != _DONE and self.error is None:
            what = "the response headers" if self.state == _HEAD else "the whole response body"
            if exc is None:
                message = f"server closed the connection before {what}"
                self.error = httpx.RemoteProtocolError(message)
            else:  # a reset: even an until-close body is cut short
                self.error = httpx.ReadError(f"connection lost before {what}: {exc}")
        self._wake()

    # --- parsing ----------------------------------------------------------------------------
    def _parse_head(self) -> bool:
        """Parse one head if the buffer holds all of it; say whether it did."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD_BYTES:
                raise ValueError("response head longer than 64 KiB")
            return False
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        del self.buffer[: end + 4]
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ValueError(f"status line {lines[0][:80]!r}")
        self.status, self.reason = int(code), reason
        self.headers = []
        length = -1
        chunked = False
        self.keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError(f"header line {line[:80]!r}")
            name, value = name.strip(), value.strip()
            self.headers.append((name, value))
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif lowered == b"connection":
                self.keep_alive = value.lower() != b"close"
        if self.status < 200 and self.status != 101:
            return True  # an interim 1xx response: the real head follows
        self.state = _BODY
        if self.bodiless or self.status in (204, 304):
            self.framing, self.remaining = "length", 0
        elif chunked:
            self.framing, self.in_chunk, self.trailers = "chunked", False, False
        elif length >= 0:
            self.framing, self.remaining = "length", length
        else:
            self.framing, self.keep_alive = "close", False
        if self.framing == "length" and self.remaining == 0:
            self.state = _DONE
        return True

    def _parse_body(self) -> None:
        buf = self.buffer
        if self.framing == "close":
            if buf:
                self.parts.append(bytes(buf))
                buf.clear()
            return
        if self.framing == "length":
            take = min(self.remaining, len(buf))
            if take:
                self.parts.append(bytes(buf[:take]))
                del buf[:take]
                self.remaining -= take
            if self.remaining == 0:
                self.state = _DONE
            return
        out: list[bytes] = []
        while buf:
            if self.trailers:
                end = buf.find(b"\r\n")
                if end < 0:
                    break
                del buf[: end + 2]
                if end == 0:  # the blank line that ends the message
                    self.state = _DONE
                    break
                continue
            if self.in_chunk:
                if self.remaining > 0:
                    take = min(self.remaining, len(buf))
                    out.append(bytes(buf[:take]))
                    del buf[:take]
                    self.remaining -= take
                    if self.remaining:
                        break
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
                del buf[:2]
                self.in_chunk = False
                continue
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > 1024:
                    raise ValueError("chunk size line longer than 1 KiB")
                break
            size = int(bytes(buf[:end]).split(b";", 1)[0].strip() or b"x", 16)
            del buf[: end + 2]
            if size == 0:
                self.trailers = True
            else:
                self.in_chunk, self.remaining = True, size
        if out:
            self.parts.append(b"".join(out))

    # --- waiting ----------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None, request: httpx.Request) -> None:
        """Until more bytes were parsed, the connection closed, or `timeout` passed."""
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_later(timeout, waiter.cancel) if timeout is not None else None
        try:
            await waiter
        except asyncio.CancelledError:
            if timer is not None and waiter.cancelled() and not _cancelling():
                self.close()
                raise httpx.ReadTimeout(f"no data for {timeout:g} s", request=request) from None
            raise
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    def begin(self, bodiless: bool) -> None:
        self.state, self.status, self.headers = _HEAD, 0, []
        self.bodiless = bodiless
        self.parts.clear()
        self.error = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self._wake()  # the loop may call connection_lost only later (after a write flush)


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives; hands the connection back to the pool when done."""

    def __init__(
        self,
        pool: LeanHTTPTransport,
        key: tuple[str, int],
        conn: _Connection,
        request: httpx.Request,
        timeout: float | None,
    ) -> None:
        self.pool, self.key, self.conn = pool, key, conn
        self.request, self.timeout = request, timeout
        self.released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self.conn
        while True:
            if conn.parts:
                yield conn.parts.popleft()
                continue
            if conn.state == _DONE:
                return
            if conn.error is not None:
                raise conn.error
            if conn.closed:
                raise httpx.ReadError("connection closed", request=self.request)
            await conn.wait(self.timeout, self.request)

    async def aclose(self) -> None:
        if self.released:
            return
        self.released = True
        conn = self.conn
        try:
            if conn.state == _BODY and conn.framing != "close" and not _cancelling():
                await self._finish()
        finally:
            reusable = (
                conn.state == _DONE and conn.keep_alive and not conn.closed and not conn.buffer
            )
            if reusable:
                self.pool.release(self.key, conn)
            else:
                self.pool.discard(conn)

    async def _finish(self) -> None:
        """Drop the rest of the body until it ends, for at most the grace (or read) timeout."""
        conn = self.conn
        grace = _FINISH_GRACE_S if self.timeout is None else min(self.timeout, _FINISH_GRACE_S)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while conn.state == _BODY and conn.keep_alive and conn.error is None and not conn.closed:
            conn.parts.clear()
            left = deadline - loop.time()
            if left <= 0:
                return
            try:
                await conn.wait(left, self.request)
            except httpx.ReadTimeout:
                return
        conn.parts.clear()


async def _write_on_time(
    clock: SendClock,
    request: httpx.Request,
    conn: _Connection,
    transport: asyncio.Transport,
    data: bytes,
) -> float:
    """Have `clock` write `data` at the request's ``send_at``; return the send time. What the
    socket did not take at once is written by the loop; a cancelled wait drops the write."""
    due = float(request.extensions["send_at"])
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[tuple[float, int, OSError | None]] = loop.create_future()

    def done(sent: float, written: int, error: OSError | None) -> None:
        if not answer.done():
            answer.set_result((sent, written, error))

    job = clock.submit(due, conn.fd, data, done)
    try:
        sent, written, error = await answer
    except asyncio.CancelledError:
        clock.cancel(job)
        raise
    if error is not None:
        raise httpx.WriteError(f"sending the request: {error}", request=request)
    if written < len(data):
        transport.write(data[written:])
    return sent


class LeanHTTPTransport(httpx.AsyncBaseTransport):
    """Plain-HTTP/1.1 transport with an O(1) keep-alive pool per host (no TLS, no proxies)."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int], list[_Connection]] = {}
        self.open: set[_Connection] = set()

    def release(self, key: tuple[str, int], conn: _Connection) -> None:
        self.idle.setdefault(key, []).append(conn)

    def discard(self, conn: _Connection) -> None:
        conn.close()
        self.open.discard(conn)

    async def _connect(self, key: tuple[str, int], timeout: float | None) -> _Connection:
        idle = self.idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
            self.open.discard(conn)
        loop = asyncio.get_running_loop()
        connecting = loop.create_connection(_Connection, *key)
        transport, conn = await asyncio.wait_for(connecting, timeout)
        # the Protocol contract does not promise that connection_made ran by now: take the
        # transport from the loop's own answer
        conn.transport = transport
        sock = transport.get_extra_info("socket")  # None on uvloop once the server closed it
        conn.fd = sock.fileno() if sock is not None else -1
        self.open.add(conn)
        return conn

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"LeanHTTPTransport speaks http, not {url.scheme}")
        key = (url.host, url.port or 80)
        timeouts = request.extensions.get("timeout", {})
        where = f"{key[0]}:{key[1]}"
        body = await request.aread()  # first: no await between taking a connection and writing
        head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), url.raw_path)]
        head += [b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw]
        head.append(b"\r\n")
        try:
            conn = await self._connect(key, timeouts.get("connect"))
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {where}", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(f"{where}: {exc}", request=request) from exc
        transport = conn.transport
        if transport is None or conn.closed or transport.is_closing() or conn.fd < 0:
            # the server closed a new connection while the loop handed it over (uvloop raises
            # RuntimeError on writes to a closed transport, asyncio drops them silently)
            self.discard(conn)
            raise httpx.RemoteProtocolError(
                "server closed the connection before the request was sent", request=request
            )
        conn.begin(bodiless=request.method == "HEAD")
        data = b"".join(head) + body
        clock = request.extensions.get("send_clock")
        read_timeout = timeouts.get("read")
        try:
            if clock is None:
                sent = time.perf_counter()
                transport.write(data)
            else:
                sent = await _write_on_time(clock, request, conn, transport, data)
            while conn.state == _HEAD:
                if conn.error is not None:
                    raise conn.error
                if conn.closed:
                    raise httpx.RemoteProtocolError(
                        "server closed the connection before the response headers",
                        request=request,
                    )
                await conn.wait(read_timeout, request)
        except BaseException:
            self.discard(conn)
            raise
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=_Body(self, key, conn, request, read_timeout),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": conn.reason,
                "sent_s": sent,
            },
        )

    async def aclose(self) -> None:
        for conn in self.open:
            conn.close()
        self.open.clear()
        self.idle.clear()

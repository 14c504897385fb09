"""The load generator's HTTP client, and its shortcut past httpx's per-request machinery.

Where it sits: `runners.bench.loadgen.make_client` builds a `LeanClient` (plain-HTTP URLs go to
`runners.bench.transport.LeanHTTPTransport`, https to httpx's own transport); the load
generator builds each request with `post` and sends it with `open_stream`. For a plain-HTTP
URL of a `LeanClient` these skip what httpx does for every request and a benchmark never uses
(URL merging, cookie extraction, auth and redirect handling, the bound stream and decoding
wrappers): 0.2 to 0.4 ms of CPU per request in scripts/bench_trace_replay.py, a tenth of a
core or more at 400 requests/s. Anything else (another client, https, a client with auth,
event hooks or cookies, a compressed response) takes httpx's ordinary path, so behaviour is
the same either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx

from runners.bench.sendclock import LoopTimed
from runners.bench.transport import LeanHTTPTransport


class LeanClient(httpx.AsyncClient):
    """An AsyncClient without a connection cap or proxies whose plain-HTTP transport is
    `lean` (`open_stream` sends to it directly)."""

    def __init__(self, timeout_s: float) -> None:
        self.lean = LeanHTTPTransport()
        super().__init__(
            timeout=httpx.Timeout(timeout_s, connect=30.0),
            transport=self.lean,
            mounts={
                "https://": LoopTimed(
                    httpx.AsyncHTTPTransport(
                        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
                    )
                )
            },
            trust_env=False,
        )
        self._posts: dict[tuple[str, tuple[tuple[str, str], ...]], _Post] = {}

    def direct(self, url: httpx.URL) -> LeanHTTPTransport | None:
        """The transport to send `url` to directly, or None where httpx must be gone through
        (https, or client settings that act on every request)."""
        plain = (
            url.scheme == "http"
            and self.auth is None
            and not self.cookies
            and not self.event_hooks["request"]
            and not self.event_hooks["response"]
        )
        return self.lean if plain else None


class _Post:
    """What every POST to one URL with the same headers shares: the parsed URL, the client's
    headers merged with the given ones, and the client's timeouts."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: Mapping[str, str]) -> None:
        template = client.build_request("POST", url, headers=headers, content=b"")
        self.url = template.url
        self.headers = httpx.Headers(
            [(k, v) for k, v in template.headers.raw if k.lower() != b"content-length"]
        )
        self.extensions = dict(template.extensions)


def new_post(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], content: bytes
) -> httpx.Request:
    """`client.build_request("POST", url, headers=headers, content=content)`, with the URL and
    headers merged once per `LeanClient` rather than for every request."""
    if not isinstance(client, LeanClient):
        return client.build_request("POST", url, headers=headers, content=content)
    key = (url, tuple(headers.items()))
    shared = client._posts.get(key)
    if shared is None:
        shared = client._posts[key] = _Post(client, url, headers)
    return httpx.Request(
        "POST",
        shared.url,
        headers=shared.headers,
        content=content,
        extensions=dict(shared.extensions),
    )


async def open_stream(
    client: httpx.AsyncClient, request: httpx.Request
) -> tuple[httpx.Response, AsyncIterator[bytes]]:
    """`client.send(request, stream=True)` and its body as it arrives (`aiter_bytes`): straight
    to the transport and its own byte stream where `LeanClient.direct` allows it and the body
    needs no decoding (the response then has no `request`, and no cookies are kept)."""
    lean = client.direct(request.url) if isinstance(client, LeanClient) else None
    if lean is None:
        response = await client.send(request, stream=True)
        return response, response.aiter_bytes()
    if client.is_closed:
        raise RuntimeError("Cannot send a request, as the client has been closed.")
    response = await lean.handle_async_request(request)
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    stream = response.stream
    if encoding != "identity" or not isinstance(stream, httpx.AsyncByteStream):
        return response, response.aiter_bytes()
    return response, stream.__aiter__()

"""A WSGI guard in front of optuna-dashboard: read-only, Host-checked, optionally token-protected.

Place in the data flow: `optimizer.dashboard` builds optuna-dashboard's bottle app over the
study's storage, wraps it in `Guard` and serves it with `guarded_server`. Every request passes
three checks, in this order:

1. Host: the ``Host`` header must name the bound address (a loopback bind also accepts
   ``localhost`` and ``127.0.0.1``) or a name given with ``--allow-host``, with the bound port;
   anything else gets 421, which closes DNS rebinding (a hostile page whose name resolves to
   127.0.0.1 still sends its own name in ``Host``).
2. Token (only when one is set): ``Authorization: Bearer T``, ``?token=T`` (answered with a
   cookie so the page's own requests carry it) or that cookie; otherwise 401.
3. Writes: any method other than GET, HEAD and OPTIONS (deleting a study, saving a note,
   telling a trial) gets 403 unless writes were allowed.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
COOKIE = "optimizer_dashboard_token"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """True for the every-interface addresses (``0.0.0.0``, ``::``), which include loopback."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` header values accepted for a server bound to ``host:port``."""
    names = {host, *extra}
    if is_loopback(host) or is_wildcard(host):
        names.update(LOOPBACK_NAMES)
    hosts = {f"{name.lower()}:{port}" for name in names}
    if port == 80:  # a browser leaves the default port out of the header
        hosts.update(name.lower() for name in names)
    return frozenset(hosts)


@dataclass(frozen=True)
class GuardPolicy:
    hosts: frozenset[str]
    allow_writes: bool = False
    token: str | None = None


class Guard:
    """The WSGI middleware: refuses what `GuardPolicy` does not allow, passes the rest on."""

    def __init__(self, app: WSGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        host = str(environ.get("HTTP_HOST", "")).lower()
        if host not in self.policy.hosts:
            return refuse(start_response, "421 Misdirected Request", f"host {host!r} not served")
        cookie_to_set = None
        if self.policy.token is not None:
            presented = presented_tokens(environ)
            if not any(hmac.compare_digest(t, self.policy.token) for t in presented.values()):
                return refuse(start_response, "401 Unauthorized", "a valid token is required")
            if "query" in presented and "cookie" not in presented:
                cookie_to_set = (
                    "Set-Cookie",
                    f"{COOKIE}={self.policy.token}; Path=/; HttpOnly; SameSite=Strict",
                )
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if method not in SAFE_METHODS and not self.policy.allow_writes:
            return refuse(
                start_response, "403 Forbidden", "the dashboard is read-only (--allow-writes)"
            )
        if cookie_to_set is None:
            return self.app(environ, start_response)

        def with_cookie(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*headers, cookie_to_set], *exc)

        return self.app(environ, with_cookie)


def presented_tokens(environ: dict[str, Any]) -> dict[str, str]:
    """The tokens a request carries, by where they came from (header, query, cookie)."""
    found: dict[str, str] = {}
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    if auth.startswith("Bearer "):
        found["header"] = auth.removeprefix("Bearer ").strip()
    query = parse_qs(str(environ.get("QUERY_STRING", ""))).get("token")
    if query:
        found["query"] = query[0]
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(str(environ.get("HTTP_COOKIE", "")))
    except Exception:  # a malformed Cookie header carries no token
        cookies = SimpleCookie()
    if COOKIE in cookies:
        found["cookie"] = cookies[COOKIE].value
    return found


def refuse(start_response: Callable[..., Any], status: str, reason: str) -> list[bytes]:
    body = json.dumps({"reason": reason}).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class ThreadedWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request (as optuna-dashboard's own CLI serves it)."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    """No access log line per request (the dashboard polls every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def guarded_server(app: WSGIApp, host: str, port: int, policy: GuardPolicy) -> WSGIServer:
    """Binds ``host:port`` now; `serve_forever()` on the result serves ``Guard(app, policy)``."""
    return make_server(
        host,
        port,
        Guard(app, policy),
        server_class=ThreadedWSGIServer,
        handler_class=QuietHandler,
    )

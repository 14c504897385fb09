"""Storage secrets never leave the process: `redact` a URL before showing it, `scrub` any text
derived from it (a driver's error quotes the URL or the password) before printing it.

A password can sit in three places of a database URL: the userinfo (``user:pw@host``), a query
parameter (``?password=pw``, ``sslpassword=...``; ``passfile`` is a path and stays), or, once
percent-decoded, anywhere in a message the database driver made from it. A PostgreSQL URL can
also take its password from outside (``PGPASSWORD``, a libpq service or password file;
`optimizer.libpq_secrets`): those are scrubbed from messages as well. Every command prints
storage URLs and storage errors only through these two functions.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from optimizer.libpq_secrets import libpq_secrets

MASK = "***"
_SECRET_QUERY = re.compile(r"(?i)([?&](?:[^=&#]*password|pwd)=)([^&#]*)")


def _userinfo_end(rest: str) -> int:
    """Index of the '@' closing the userinfo of `rest` (the URL after ``://``), else -1."""
    first = rest.find("@")
    if first < 0:
        return -1
    query = rest.find("?", first)
    return rest.rfind("@", 0, query if query >= 0 else len(rest))


def secrets_in(url: str) -> set[str]:
    """Every password `url` carries, as written and percent-decoded, and those libpq would take
    for it from the environment and its files."""
    return written_secrets(url) | libpq_secrets(url)


def written_secrets(url: str) -> set[str]:
    """The passwords written in `url` itself, as written and percent-decoded."""
    found: set[str] = set()
    rest = url.partition("://")[2]
    at = _userinfo_end(rest)
    if at >= 0 and ":" in rest[:at]:
        found.add(rest[:at].split(":", 1)[1])
    found.update(match.group(2) for match in _SECRET_QUERY.finditer(url))
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is not None:
        if parsed.password:
            found.add(str(parsed.password))
        for key, value in parsed.query.items():
            lowered = key.lower()
            if lowered.endswith("password") or lowered == "pwd":
                found.update([value] if isinstance(value, str) else value)
    found |= {unquote(secret) for secret in found}
    found.discard("")
    return found


def scrub(text: str, url: str | None) -> str:
    """`text` with every password of `url` (written in it or taken from outside) replaced by
    ***."""
    return _mask(text, secrets_in(url)) if url else text


def _mask(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact(url: str) -> str:
    """The URL with every password written in it replaced by ***, for messages, logs and
    reports. (A password from outside the URL is not in it: masking it there would only mangle
    a user name that happens to equal it, e.g. PGPASSWORD=postgres for user postgres.)"""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _mask(url, written_secrets(url))
    shown = rest
    at = _userinfo_end(rest)
    if at >= 0 and ":" in rest[:at]:
        user = rest[:at].split(":", 1)[0]
        shown = f"{user}:{MASK}{rest[at:]}"
    shown = _SECRET_QUERY.sub(lambda match: match.group(1) + MASK, shown)
    return _mask(f"{scheme}://{shown}", written_secrets(url))

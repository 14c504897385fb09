"""The PostgreSQL passwords a storage URL uses without writing them: the ones libpq takes from
the environment and from its files, so that `optimizer.redaction` hides them too.

Place in the data flow: `optimizer.redaction.secrets_in` adds these to the passwords written in
the URL, so every message built from a storage error passes through `scrub` with them. For a
``postgresql`` URL, libpq (under psycopg) finds a password in, besides the URL:

- the ``PGPASSWORD`` environment variable;
- the URL's service (``?service=NAME``, else ``PGSERVICE``), a section of the service file
  (``PGSERVICEFILE``, else ``~/.pg_service.conf``) or of ``PGSYSCONFDIR/pg_service.conf``,
  which may hold ``password=...`` (and name a ``passfile``);
- the password file (``?passfile=``, the service's ``passfile``, ``PGPASSFILE``, else
  ``~/.pgpass``): lines ``host:port:database:user:password`` where ``*`` matches anything.

Only lines that can apply to this URL are taken (a field the URL leaves to libpq's defaults
matches any line), so an unrelated short password elsewhere in the file does not mask text.
Unreadable files are skipped: they cannot leak what they would not give.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_MAX_FILE_BYTES = 1 << 20  # a service or password file is a few lines


def _read(path: Path) -> str:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_FILE_BYTES:
            return ""
        return path.read_text(errors="replace")
    except OSError:
        return ""


def service_settings(text: str, service: str) -> dict[str, str]:
    """The ``key=value`` lines of section ``[service]`` of a libpq service file."""
    settings: dict[str, str] = {}
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == service
            continue
        key, sep, value = line.partition("=")
        if inside and sep:
            settings[key.strip().lower()] = value.strip()
    return settings


def _pgpass_fields(line: str) -> list[str]:
    """The colon-separated fields of a password-file line (``\\:`` and ``\\\\`` escaped)."""
    fields: list[str] = []
    current: list[str] = []
    escaped = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":" and len(fields) < 4:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def pgpass_passwords(text: str, wanted: tuple[str | None, ...]) -> set[str]:
    """Passwords of the password-file lines that can apply to (host, port, database, user);
    a None in `wanted` is a value the URL leaves to libpq, which any line may match."""
    found: set[str] = set()
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = _pgpass_fields(raw)
        if len(fields) != 5:
            continue
        if all(
            pattern == "*" or value is None or pattern == value
            for pattern, value in zip(fields[:4], wanted, strict=True)
        ):
            found.add(fields[4])
    return found


def libpq_secrets(url: str, environ: Mapping[str, str] | None = None) -> set[str]:
    """Every password libpq may use for `url` that is not written in the URL itself."""
    env = os.environ if environ is None else environ
    if not url.startswith("postgres"):
        return set()
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return set()
    query = {key.lower(): value for key, value in parsed.query.items()}

    def option(name: str) -> str | None:
        value = query.get(name)
        if isinstance(value, tuple):
            value = value[-1] if value else None
        return value

    found: set[str] = set()
    if env.get("PGPASSWORD"):
        found.add(env["PGPASSWORD"])
    settings: dict[str, str] = {}
    service = option("service") or env.get("PGSERVICE")
    if service:
        home = Path(env.get("HOME", str(Path.home())))
        files = [
            Path(env["PGSERVICEFILE"]) if env.get("PGSERVICEFILE") else home / ".pg_service.conf"
        ]
        if env.get("PGSYSCONFDIR"):
            files.append(Path(env["PGSYSCONFDIR"]) / "pg_service.conf")
        for path in files:
            settings = service_settings(_read(path), service)
            if settings:
                break  # libpq uses the first file that defines the service
        if settings.get("password"):
            found.add(settings["password"])
    passfile = option("passfile") or settings.get("passfile") or env.get("PGPASSFILE")
    path = Path(passfile) if passfile else Path(env.get("HOME", str(Path.home()))) / ".pgpass"
    wanted = (
        parsed.host or option("host") or settings.get("host") or env.get("PGHOST"),
        str(parsed.port) if parsed.port else option("port") or settings.get("port"),
        parsed.database or option("dbname") or settings.get("dbname") or env.get("PGDATABASE"),
        parsed.username or option("user") or settings.get("user") or env.get("PGUSER"),
    )
    found |= pgpass_passwords(_read(path), wanted)
    found.discard("")
    return found

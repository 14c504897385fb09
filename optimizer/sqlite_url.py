"""The file behind a ``sqlite:///`` storage URL, in both of its spellings.

Place in the data flow: every place that needs the database file of a SQLite storage (the
studies folder to create, the damage check before opening, the lock beside the file shared by
drivers, the study's folder beside it, "no study database at ...") asks `sqlite_file`. SQLite
also takes a URI, ``sqlite:///file:PATH?mode=ro&uri=true`` (read-only, for example); cutting
the prefix alone made ``file:PATH?mode=ro&uri=true`` a relative path and created a folder named
``file:`` in the working directory.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

PREFIX = "sqlite:///"


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (plain path or ``file:`` URI), else None."""
    if not url.startswith(PREFIX):
        return None
    path = url.removeprefix(PREFIX)
    if path.startswith("file:"):
        path = unquote(path.removeprefix("file:").split("?", 1)[0].split("#", 1)[0])
        if path.startswith("//"):  # file://host/path: SQLite accepts only an empty host
            path = path[2:]
            path = path[path.find("/") :] if "/" in path else path
    return Path(path)


def is_read_only(url: str) -> bool:
    """A SQLite URI opened read-only (``mode=ro`` or ``immutable=1``)."""
    if sqlite_file(url) is None or "file:" not in url:
        return False
    query = url.partition("?")[2].lower().split("&")
    return "mode=ro" in query or "immutable=1" in query

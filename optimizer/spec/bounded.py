"""Bounds on a space file before it is parsed: a regular file, of a size, depth and alias count a
space file can have.

Place in the data flow: `optimizer.spec.load` calls `read_bounded` instead of reading the file
itself, so a device (`/dev/zero`), a FIFO or a socket is refused before it is opened (reading one
would hang), a huge file before it is read, and YAML nested or aliased beyond any real space file
before it is built into objects (deep nesting ends in a RecursionError, an alias bomb in
exponential validation). Every refusal is one `SpecError` naming the file, the line and the fix.
"""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from optimizer.errors import SpecError

MAX_SPACE_BYTES = 256 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 200


def read_bounded(path: Path) -> str:
    """The file's text, if it is a regular file of at most `MAX_SPACE_BYTES` whose YAML nests at
    most `MAX_DEPTH` deep and uses at most `MAX_ALIASES` aliases."""
    try:
        info = path.stat()
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(
            f"{path}: not a regular file (a device, FIFO, socket or folder); give the path of a "
            "space file"
        )
    if info.st_size > MAX_SPACE_BYTES:
        raise SpecError(
            f"{path}: {info.st_size:,} bytes; a space file is at most {MAX_SPACE_BYTES:,} bytes. "
            "Put large data (traces, datasets) in their own files and name them from the workload"
        )
    try:
        with path.open("rb") as handle:
            text = handle.read(MAX_SPACE_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot be read: {exc}") from None
    _check_shape(path, text)
    return text


def _check_shape(path: Path, text: str) -> None:
    """Walk the YAML's events (no recursion, nothing built) and refuse what no space file needs."""
    depth = aliases = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(
                        f"{path}: line {_line(event)}: nested more than {MAX_DEPTH} levels deep; "
                        "a space file needs a few levels, so this is not one"
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise SpecError(
                        f"{path}: line {_line(event)}: more than {MAX_ALIASES} YAML aliases "
                        "(*name); write the values out or use fewer anchors"
                    )
    except yaml.YAMLError:
        return  # the loader reports malformed YAML with its own line and column


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 0

"""Bounded reading of workload files, and errors that name the file and the line.

Where it sits: under every file format of `runners.workload.sources`. A file is checked before
it is parsed (it exists, is a regular file, is not empty, is at most `MAX_FILE_BYTES`); lines
are read one at a time with at most `MAX_LINE_BYTES` each, so a hostile or huge file costs
bounded memory per line and the readers stop as soon as they have the requests they need.
JSON Lines (`json_objects`) and CSV with a header (`CsvTable`) are read here for every format.
Every problem is a `DatasetError` whose message starts with ``FILE:LINE:`` (or ``FILE:`` when it
concerns the whole file).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from runners.errors import DatasetError

MAX_FILE_BYTES = 4 * 1024**3
MAX_JSON_DOCUMENT_BYTES = 1024**3
MAX_LINE_BYTES = 16 * 1024**2
MAX_REQUESTS = 100_000


def problem(path: Path, line: int | None, message: str) -> DatasetError:
    """A `DatasetError` naming the file (and the line, when known) first."""
    where = f"{path}:{line}" if line is not None else str(path)
    return DatasetError(f"{where}: {message}")


def check_file(path: Path, limit: int = MAX_FILE_BYTES) -> int:
    """The file's size in bytes, after checking it can be read as a workload file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise problem(path, None, "no such file (paths are relative to the space file)") from None
    except OSError as exc:
        raise problem(path, None, f"cannot be read: {exc.strerror or exc}") from None
    if not path.is_file():
        raise problem(path, None, "is not a regular file")
    if info.st_size == 0:
        raise problem(path, None, "the file is empty")
    if info.st_size > limit:
        raise problem(
            path,
            None,
            f"the file has {info.st_size:,} bytes, more than the {limit:,} this format may "
            "have; cut it to the requests you replay",
        )
    return info.st_size


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, text without the line break) of each non-blank line."""
    check_file(path)
    try:
        with path.open("rb") as handle:
            number = 0
            while True:
                raw = handle.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                number += 1
                if len(raw) > MAX_LINE_BYTES:
                    raise problem(path, number, f"line longer than {MAX_LINE_BYTES:,} bytes")
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise problem(path, number, f"not UTF-8 text ({exc.reason})") from None
                if text.strip():
                    yield number, text.lstrip("\ufeff") if number == 1 else text
    except OSError as exc:
        raise problem(path, None, f"cannot be read: {exc.strerror or exc}") from None


def read_document(path: Path) -> str:
    """A whole file as text (JSON documents), bounded by `MAX_JSON_DOCUMENT_BYTES`."""
    check_file(path, MAX_JSON_DOCUMENT_BYTES)
    try:
        return path.read_bytes().decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise problem(path, None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise problem(path, None, f"cannot be read: {exc.strerror or exc}") from None


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) of each line of a JSON Lines file."""
    # `json.loads` without its Python wrappers (the C scanner; typeshed does not list it)
    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
    for line, text in read_lines(path):
        try:
            value, end = scan(text, 0)
        except (ValueError, StopIteration):  # no JSON value at the line's first character
            value, end = None, -1
        if end != len(text) and (end < 0 or text[end:].strip()):
            try:  # (leading blanks, or not JSON: `json.loads` names the problem)
                value = json.loads(text)
            except ValueError as exc:
                raise problem(path, line, f"not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise problem(path, line, f"expected a JSON object, found {type(value).__name__}")
        yield line, value


class CsvTable:
    """A CSV file with a header row: `header` (names, stripped) and its data rows as (line
    number, cells), each with as many cells as the header names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.line = 0
        self._reader = csv.reader(self._texts(read_lines(path)))
        self.header = [name.strip() for name in self._next() or []]

    def _texts(self, numbered: Iterator[tuple[int, str]]) -> Iterator[str]:
        for line, text in numbered:
            self.line = line
            yield text

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except csv.Error as exc:
            raise problem(self.path, self.line, f"not valid CSV ({exc})") from None

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        while (cells := self._next()) is not None:
            if len(cells) != len(self.header):
                raise problem(
                    self.path,
                    self.line,
                    f"{len(cells)} cells, but the header names {len(self.header)} columns",
                )
            yield self.line, cells

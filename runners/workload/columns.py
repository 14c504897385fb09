"""Columnar reading of the trace formats: whole chunks of lines at once, for long traces.

Where it sits: the first try of `runners.workload.traces`' two readers. A Mooncake or Azure
trace written the way the published traces are (one canonical line shape, integer lengths) is
read here a chunk of lines at a time: one regular expression checks every line of the chunk,
NumPy parses its numbers in one call, and the window and `num_prompts` are cut with array
operations, giving the same `Rows` the line-by-line reader builds (hash ids as `BlockIds`).
Anything else (other spacing or key order, extra fields, blank lines, CRLF, timestamps that
go backwards, a value out of range, a malformed line) makes these functions return None, and
the line-by-line reader reads the file again: it alone accepts the other spellings and words
the errors, so both paths give one result and one error message.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from runners.types import Workload
from runners.workload.arrays import FloatArray, IntArray
from runners.workload.reader import MAX_LINE_BYTES, check_file
from runners.workload.rows import BlockIds, Rows, replay_bounds

CHUNK_BYTES = 1024**2  # (8 MiB: 5% (Mooncake) to 40% (Azure) slower; arrays leave the caches)
_INT = rb"(?:0|[1-9][0-9]{0,17})"  # a JSON integer >= 0 that fits int64


def _mooncake_line(comma: bytes, colon: bytes) -> re.Pattern[bytes]:
    """One Mooncake row with these separators, its hash ids only as digits and separator bytes
    (`_hash_id_counts` checks their order: the regular expression for it is 3 times slower)."""
    stamp = rb"(?:0|[1-9][0-9]{0,14})"  # milliseconds that are exact as floats
    fields = ((b"timestamp", stamp), (b"input_length", _INT), (b"output_length", _INT))
    head = comma.join(b'"' + name + b'"' + colon + value for name, value in fields)
    ids = rb"[0-9" + comma + rb"]*"
    line = rb"\{" + head + comma + b'"hash_ids"' + colon + rb"\[" + ids + rb"\]\}\n"
    return re.compile(line)


MOONCAKE_LINES = (_mooncake_line(b", ", b": "), _mooncake_line(b",", b":"))
"""Rows as Python's json.dumps writes them (the published traces), then without blanks."""
AZURE_HEADER = b"TIMESTAMP,ContextTokens,GeneratedTokens"
AZURE_LINES = re.compile(  # date and time to the 100 ns (as the published trace), two counts
    rb"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{7},[0-9]{1,15},"
    rb"[0-9]{1,15}\n)*"
)
_DIGITS_ONLY = bytes(c if 48 <= c <= 57 else 32 for c in range(256))  # other bytes -> space
_ID_LIMIT = 10**18  # hash ids below it have at most 18 digits and fit int64
_SPACE, _QUOTE, _COMMA, _ZERO, _CLOSE = (ord(c) for c in ' ",0]')


def mooncake_columns(path: Path, workload: Workload) -> Rows | None:
    """The rows of a Mooncake trace in canonical lines, or None (read it line by line)."""
    window = _Window(workload)
    output_min = 0 if workload.output_len is not None else 1
    for first_line, lines, chunk in _chunks(path):
        spaced = MOONCAKE_LINES[0].sub(b"", chunk) == b""  # (nothing left: all lines match)
        if not spaced and MOONCAKE_LINES[1].sub(b"", chunk) != b"":
            return None
        counts = _hash_id_counts(chunk, lines, spaced)
        if counts is None:
            return None
        n = lines
        numbers = np.fromstring(chunk.translate(_DIGITS_ONLY), dtype=np.int64, sep=" ")
        if len(numbers) != 3 * n + int(counts.sum()) or int(numbers.max()) >= _ID_LIMIT:
            return None
        starts = np.concatenate([[0], np.cumsum(counts + 3)[:-1]]).astype(np.int64)
        prompt, output = numbers[starts + 1], numbers[starts + 2]
        if int(prompt.min()) < 1 or int(output.min()) < output_min:
            return None
        is_id = np.ones(len(numbers), dtype=np.bool_)
        for field in range(3):
            is_id[starts + field] = False
        stamps_s = numbers[starts].astype(np.float64) / 1000.0
        if not window.add(first_line, stamps_s, prompt, output, (counts, numbers[is_id])):
            return None
        if window.done:
            break
    return window.rows(path, workload.hash_block_size)


def _hash_id_counts(chunk: bytes, lines: int, spaced: bool) -> IntArray | None:
    """Hash ids per line of a chunk whose lines all match `MOONCAKE_LINES` (spaced or not), or
    None when some line's ids are not integers without leading zeros, one separator apart.

    Whole-chunk checks stand in for the order of the ids' bytes: every comma follows a digit
    and is followed by the separator (spaced: the file has no other blanks than those and the
    four after the colons of each line) and then by a quote or a digit; no zero starts a
    number of several digits (numbers start after a list's "[" and after separators). A
    line's ids are then its commas less the head's three (those before a quote), plus one,
    or none when its list is "[]"."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    commas = np.flatnonzero(data == _COMMA)  # never at either end: lines start with "{"
    if not bool(_is_digit(data[commas - 1]).all()):
        return None
    separator = 2 if spaced else 1
    after = data[commas + separator]  # a quote after the head's commas, a digit after ids'
    if spaced:
        if not bool((data[commas + 1] == _SPACE).all()) or bool((after == _CLOSE).any()):
            return None
        if np.count_nonzero(data == _SPACE) != len(commas) + 4 * lines:
            return None
    elif not bool((_is_digit(after) | (after == _QUOTE)).all()):
        return None
    heads = np.flatnonzero(after == _QUOTE)  # (indices in `commas`) three per line
    if len(heads) != 3 * lines:
        return None
    firsts = heads[::3]
    lists = commas[heads[2::3]] + 11 + 2 * separator  # each list's first byte: "]" if empty
    zeros = np.concatenate([lists, commas[after == _ZERO] + separator])
    if bool(((data[zeros] == _ZERO) & _is_digit(data[zeros + 1])).any()):
        return None
    ids_and_one: IntArray = np.diff(firsts, append=len(commas)) - 2
    counts: IntArray = np.where(data[lists] == _CLOSE, 0, ids_and_one)
    return counts


def _is_digit(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    return (data - np.uint8(48)) < 10


def azure_columns(path: Path, workload: Workload) -> Rows | None:
    """The rows of an Azure trace whose header is exactly its three columns and whose
    timestamps are dates and times to the 100 ns, or None (read it line by line)."""
    window = _Window(workload)
    output_min = 0 if workload.output_len is not None else 1
    first_ordinal: int | None = None
    for first_line, lines, chunk in _chunks(path):
        if first_line == 1:
            header, _, chunk = chunk.partition(b"\n")
            if header != AZURE_HEADER:
                return None
            first_line, lines = 2, lines - 1
        if AZURE_LINES.fullmatch(chunk) is None or lines == 0:
            return None
        numbers = np.fromstring(chunk.translate(_DIGITS_ONLY), dtype=np.int64, sep=" ")
        year, month, day, hours, minutes, seconds, ticks, prompt, output = numbers.reshape(-1, 9).T
        dates = year * 10_000 + month * 100 + day
        keys = np.unique(dates)
        ordinals = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys.tolist()):
            try:
                ordinals[i] = datetime.date(key // 10_000, key // 100 % 100, key % 100).toordinal()
            except ValueError:
                return None
        ordinal = ordinals[np.searchsorted(keys, dates)]
        if first_ordinal is None:
            first_ordinal = int(ordinal[0])
        day_s = (ordinal - first_ordinal) * 86400.0
        # the line-by-line reader's arithmetic, in its order, so the seconds are the same floats
        # (digits / 1e7 is the float nearest the decimal, as float() gives it)
        stamps_s = day_s + hours * 3600.0
        stamps_s = stamps_s + minutes * 60.0
        stamps_s = stamps_s + (seconds * 10_000_000 + ticks) / 1e7
        if int(prompt.min()) < 1 or int(output.min()) < output_min:
            return None
        if not window.add(first_line, stamps_s, prompt, output, None):
            return None
        if window.done:
            break
    return window.rows(path, 512)


def _chunks(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(number of its first line, its number of lines, whole lines each ending in a line break)
    of a file, about `CHUNK_BYTES` at a time; the file is checked as the line-by-line reader
    checks it. A line over `MAX_LINE_BYTES` ends the chunks with one that matches no format
    (the line-by-line reader words the error)."""
    check_file(path)
    line = 1
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            if line == 1 and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            if not chunk.endswith(b"\n"):
                rest = handle.readline(MAX_LINE_BYTES + 1)
                tail = len(chunk) - chunk.rfind(b"\n") - 1
                if tail + len(rest) > MAX_LINE_BYTES:
                    yield line, 1, b"\x00\n"
                    return
                chunk += rest if rest.endswith(b"\n") else rest + b"\n"
            lines = int(np.count_nonzero(np.frombuffer(chunk, dtype=np.uint8) == 10))
            yield line, lines, chunk
            line += lines


class _Window:
    """`RowsBuilder`'s choice of rows, made on a chunk at a time: the rows inside the time
    window, then the first `num_prompts` of them; `done` once nothing more is wanted."""

    def __init__(self, workload: Workload) -> None:
        self.limit, self.start, self.end = replay_bounds(workload)
        self.first_s: float | None = None
        self.last_s = -math.inf
        self.kept = 0
        self.seen = 0
        self.done = False
        self.parts: list[tuple[IntArray, IntArray, IntArray, FloatArray, IntArray]] = []
        self.ids: list[IntArray] = []

    def add(
        self,
        first_line: int,
        stamps_s: FloatArray,
        prompt: IntArray,
        output: IntArray,
        ids: tuple[IntArray, IntArray] | None,
    ) -> bool:
        """Keep the wanted rows of one chunk (its rows' timestamps, lengths, and hash ids as
        (count per row, all ids)); False when the chunk is beyond this path (timestamps not
        finite or going backwards, a window or limit it does not cut)."""
        n = len(stamps_s)
        if self.limit < 1 or self.start > self.end or n == 0:
            return False
        if not bool(np.isfinite(stamps_s).all()) or stamps_s[0] < self.last_s:
            return False
        if bool((np.diff(stamps_s) < 0).any()):
            return False
        if self.first_s is None:
            self.first_s = float(stamps_s[0])
        self.last_s = float(stamps_s[-1])
        trace_s = stamps_s - self.first_s
        begin = int(np.searchsorted(trace_s, self.start, "left"))
        stop = int(np.searchsorted(trace_s, self.end, "left"))
        full = begin + self.limit - self.kept  # after the row that fills `num_prompts`
        if full - 1 < min(stop, n):
            end, self.seen, self.done = full, self.seen + full, True
        elif stop < n:
            end, self.seen, self.done = stop, self.seen + stop + 1, True
        else:
            end, self.seen = n, self.seen + n
        keep = slice(begin, end)
        lines = np.arange(first_line + begin, first_line + end, dtype=np.int64)
        self.kept += end - begin
        counts = np.zeros(end - begin, dtype=np.int64)
        if ids is not None:
            counts, flat = ids[0][keep], ids[1]
            offsets = np.concatenate([[0], np.cumsum(ids[0])])
            self.ids.append(flat[int(offsets[begin]) : int(offsets[end])])
        self.parts.append((lines, prompt[keep], output[keep], trace_s[keep], counts))
        return True

    def rows(self, path: Path, block_size: int) -> Rows:
        rows = Rows(path, block_size=block_size, rows_seen=self.seen)
        if self.kept == 0:
            return rows
        lines, prompt, output, trace_s, counts = (
            np.concatenate(c) for c in zip(*self.parts, strict=True)
        )
        rows.line, rows.prompt_len, rows.output_len = (
            lines.tolist(),
            prompt.tolist(),
            output.tolist(),
        )
        rows.timestamp_s = trace_s.tolist()
        if self.ids:
            rows.blocks = BlockIds(counts, np.concatenate(self.ids))
        return rows

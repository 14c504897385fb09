"""Public LLM-serving trace formats: Mooncake (JSONL) and Azure LLM inference (CSV).

Where it sits: two file formats of `runners.workload.sources`, each one entry point that reads
a trace into `Rows` and raises nothing but `DatasetError`.

- Mooncake: one JSON object per line, ``{"timestamp": ms, "input_length": n, "output_length":
  m, "hash_ids": [...]}``. Timestamps are milliseconds; each hash id names one block of
  `hash_block_size` (512) prompt tokens, the last block possibly partial, and requests whose
  leading ids agree share those blocks (`PrefixChains`).
- Azure LLM inference traces: CSV with the header ``TIMESTAMP,ContextTokens,GeneratedTokens``;
  ``TIMESTAMP`` is a date and time (``2023-11-16 18:15:46.6805900``, optionally with a UTC
  offset) or a number of seconds.

Traces in the published traces' own spelling are read a chunk at a time by
`runners.workload.columns`; the `*_lines` readers here take every other spelling, one line at
a time, and word the errors. Both are replayed with the trace's own arrival times (times
`time_scale`, inside the workload's window) and lengths; prompts are synthetic token ids of
exactly those lengths.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from runners.types import Workload
from runners.workload.columns import azure_columns, mooncake_columns
from runners.workload.reader import CsvTable, json_objects, problem
from runners.workload.rows import Rows, RowsBuilder

MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def read_mooncake(path: Path, workload: Workload) -> Rows:
    """The rows `workload` replays from a Mooncake-format trace."""
    fast = mooncake_columns(path, workload)
    return fast if fast is not None else read_mooncake_lines(path, workload)


def read_mooncake_lines(path: Path, workload: Workload) -> Rows:
    """`read_mooncake` one line at a time: any valid spelling, and the errors."""
    builder = RowsBuilder(path, workload, workload.hash_block_size)
    fields = frozenset(MOONCAKE_FIELDS)
    for line, record in json_objects(path):
        if not fields <= record.keys():
            missing = [name for name in MOONCAKE_FIELDS if name not in record]
            raise problem(
                path,
                line,
                f"a Mooncake trace row needs {', '.join(MOONCAKE_FIELDS)}; missing "
                f"{', '.join(missing)}",
            )
        timestamp = record["timestamp"]
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise problem(path, line, f"timestamp must be a number of ms, got {timestamp!r}"[:200])
        ids = record["hash_ids"]
        if not isinstance(ids, list) or not set(map(type, ids)) <= {int}:  # (bool is no int)
            raise problem(path, line, "hash_ids must be a list of integers")
        if ids and (min(ids) < -(2**63) or max(ids) >= 2**63):
            raise problem(path, line, "hash_ids must fit 64 bits (-2**63 up to 2**63 - 1)")
        prompt = _tokens(path, line, "input_length", record["input_length"], 1)
        output = _output(path, line, "output_length", record["output_length"], workload)
        more = builder.add(line, prompt, output, timestamp_s=timestamp / 1000.0, hash_ids=ids)
        if not more:
            break
    return builder.rows


def read_azure(path: Path, workload: Workload) -> Rows:
    """The rows `workload` replays from an Azure LLM-inference trace (CSV)."""
    fast = azure_columns(path, workload)
    return fast if fast is not None else read_azure_lines(path, workload)


def read_azure_lines(path: Path, workload: Workload) -> Rows:
    """`read_azure` one line at a time: any valid spelling, and the errors."""
    builder = RowsBuilder(path, workload)
    table = CsvTable(path)
    if [h for h in table.header if h in AZURE_COLUMNS] != list(AZURE_COLUMNS):
        raise problem(
            path,
            table.line,
            f"an Azure trace's header has {', '.join(AZURE_COLUMNS)}; found "
            f"{', '.join(table.header)[:200]}",
        )
    at = [table.header.index(name) for name in AZURE_COLUMNS]
    days: dict[str, int] = {}
    for line, cells in table:
        stamp, context, generated = (cells[i].strip() for i in at)
        seconds = _azure_seconds(path, line, stamp, days)
        prompt = _tokens(path, line, "ContextTokens", context, 1)
        output = _output(path, line, "GeneratedTokens", generated, workload)
        if not builder.add(line, prompt, output, timestamp_s=seconds):
            break
    return builder.rows


def _tokens(path: Path, line: int, name: str, value: object, minimum: int) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise problem(path, line, f"{name} must be an integer >= {minimum}, got {value!r}"[:200])
    return value


def _output(path: Path, line: int, name: str, value: object, workload: Workload) -> int:
    """The trace's output length; 0 is allowed only when `output_len` replaces them all."""
    return _tokens(path, line, name, value, 0 if workload.output_len is not None else 1)


def _azure_seconds(path: Path, line: int, text: str, days: dict[str, int]) -> float:
    """Seconds of an Azure TIMESTAMP (a date and time, counted from the midnight starting the
    trace's first day; or plain seconds)."""
    try:
        return float(text)
    except ValueError:
        pass
    date, _, clock = text.replace("T", " ").partition(" ")
    for mark in ("+", "Z"):
        clock = clock.split(mark)[0]
    if clock.count("-"):
        clock = clock.rsplit("-", 1)[0]  # a negative UTC offset
    try:
        day = days.get(date)
        if day is None:  # days since the trace's first day: seconds keep microseconds
            ordinal = datetime.date.fromisoformat(date).toordinal()
            day = days[date] = ordinal - days.setdefault("", ordinal)
        hours, minutes, seconds = clock.split(":")
        return day * 86400.0 + int(hours) * 3600.0 + int(minutes) * 60.0 + float(seconds)
    except ValueError:
        raise problem(
            path,
            line,
            f"TIMESTAMP {text[:60]!r} is neither a date and time (2023-11-16 18:15:46.680) nor "
            "a number of seconds",
        ) from None

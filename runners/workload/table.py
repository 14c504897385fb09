"""JSONL and CSV workload files: one request per row, as prompts or messages or token counts.

Where it sits: two file formats of `runners.workload.sources` (`read_jsonl`, `read_csv`), each
one entry point that reads a file into `Rows` and raises nothing but `DatasetError`. A row is
one of

- a text prompt: ``prompt`` (completion text) or, in JSONL, ``messages`` (a list of
  ``{"role": ..., "content": ...}``); its tokens are counted by the workload's `TokenCounter`;
- token counts: ``input_tokens`` (the whole prompt, a session's history included), sent as
  synthetic token ids of exactly that length.

Optional columns: ``output_tokens``; ``timestamp`` (seconds; the file is then a trace and must
be sorted by it); and, for token-count rows, ``hash_ids`` (ids of the prompt's blocks of
`hash_block_size` tokens, as in Mooncake traces: equal leading ids are a shared prefix),
``prefix_id`` with ``prefix_tokens`` (rows with one id share that many leading tokens), and
``session_id`` with an optional ``turn`` (a session's turns are sent one after another; each
starts with the whole previous prompt). Other columns are ignored. In CSV a list is written as
JSON (``[1, 2]``) or space-separated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

from runners.errors import DatasetError
from runners.types import Workload
from runners.workload.reader import CsvTable, json_objects, problem
from runners.workload.requests import TextPrompt
from runners.workload.rows import Rows, RowsBuilder
from runners.workload.tokens import Message, TokenCounter

PROMPT_FIELDS = ("input_tokens", "prompt", "messages")
OPTIONAL_FIELDS = (
    "output_tokens",
    "timestamp",
    "hash_ids",
    "prefix_id",
    "prefix_tokens",
    "session_id",
    "turn",
)
TOKEN_ROW_ONLY = ("hash_ids", "prefix_id", "session_id")


def read_jsonl(path: Path, workload: Workload, counter: TokenCounter) -> Rows:
    """The rows `workload` replays from a JSONL file (one JSON object per line)."""
    return _read(path, workload, counter, json_objects(path))


def read_csv(path: Path, workload: Workload, counter: TokenCounter) -> Rows:
    """The rows `workload` replays from a CSV file with a header row."""
    table = CsvTable(path)
    if not any(name in PROMPT_FIELDS for name in table.header):
        raise problem(
            path,
            table.line,
            f"the header names no prompt column; it needs one of {', '.join(PROMPT_FIELDS[:2])} "
            f"(found: {', '.join(table.header)[:200]})",
        )
    records = (
        (line, {k: v for k, v in zip(table.header, cells, strict=True) if v != ""})
        for line, cells in table
    )
    return _read(path, workload, counter, records)


def _read(
    path: Path,
    workload: Workload,
    counter: TokenCounter,
    records: Iterator[tuple[int, Mapping[str, object]]],
) -> Rows:
    builder = RowsBuilder(path, workload, workload.hash_block_size)
    first_kind: tuple[str, int] | None = None
    for line, record in records:
        row = _row(path, line, record)
        kind = "text prompts" if "text" in row else "token counts"
        first_kind = first_kind or (kind, line)
        if kind != first_kind[0]:
            raise problem(
                path,
                line,
                f"a row of {kind}, but line {first_kind[1]} has {first_kind[0]}; one file "
                "holds one kind of row",
            )
        if not builder.add(line, **row):  # type: ignore[arg-type]
            break
    rows = builder.rows
    if rows.texts is not None:
        _count_prompts(rows, counter)
    return rows


def _row(path: Path, line: int, record: Mapping[str, object]) -> dict[str, object]:
    """Keyword arguments of `RowsBuilder.add` for one record."""
    given = [name for name in PROMPT_FIELDS if name in record]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        fields = ", ".join(list(record)[:12]) or "no fields"
        raise problem(
            path,
            line,
            f"a row needs exactly one of {', '.join(PROMPT_FIELDS)} (found {what}; the row has "
            f"{fields})",
        )
    field = given[0]
    out: dict[str, object] = {"output_len": -1}
    if "output_tokens" in record:
        out["output_len"] = _count(path, line, record, "output_tokens")
    if "timestamp" in record:
        out["timestamp_s"] = _number(path, line, record, "timestamp")
    if field == "input_tokens":
        out["prompt_len"] = _count(path, line, record, "input_tokens")
        _token_row_fields(path, line, record, out)
        return out
    extra = [name for name in TOKEN_ROW_ONLY if name in record]
    if extra:
        raise problem(
            path,
            line,
            f"{', '.join(extra)} need a token-count row (input_tokens); text prompts are sent "
            "as they are",
        )
    text: TextPrompt = (
        _text(path, line, record["prompt"])
        if field == "prompt"
        else _messages(path, line, record["messages"])
    )
    out["prompt_len"] = 0  # counted once all rows are in
    out["text"] = text
    return out


def _token_row_fields(
    path: Path, line: int, record: Mapping[str, object], out: dict[str, object]
) -> None:
    if "hash_ids" in record:
        out["hash_ids"] = _int_list(path, line, record["hash_ids"])
    if "prefix_id" in record:
        if "prefix_tokens" not in record:
            raise problem(path, line, "prefix_id needs prefix_tokens (its length in tokens)")
        out["prefix"] = (str(record["prefix_id"]), _count(path, line, record, "prefix_tokens"))
    if "session_id" in record:
        out["session"] = str(record["session_id"])
        if "turn" in record:
            out["turn"] = _count(path, line, record, "turn", minimum=0)


def _count(
    path: Path, line: int, record: Mapping[str, object], name: str, minimum: int = 1
) -> int:
    value = record[name]
    parsed: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        parsed = value
    elif isinstance(value, float) and value.is_integer():
        parsed = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        parsed = int(value.strip())
    if parsed is None or parsed < minimum:
        raise problem(path, line, f"{name} must be an integer >= {minimum}, got {value!r}"[:300])
    return parsed


def _number(path: Path, line: int, record: Mapping[str, object], name: str) -> float:
    value = record[name]
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = float(value)
    except (ValueError, OverflowError):
        raise problem(path, line, f"{name} must be a number, got {value!r}"[:300]) from None
    if not math.isfinite(number):
        raise problem(path, line, f"{name} must be a finite number, got {value!r}")
    return number


def _int_list(path: Path, line: int, value: object) -> list[int]:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else text.replace(";", " ").split()
        except ValueError:
            message = f"hash_ids is not a list of integers: {text[:80]!r}"
            raise problem(path, line, message) from None
    if not isinstance(value, list):
        raise problem(path, line, "hash_ids must be a list of integers")
    out: list[int] = []
    for item in value:
        if isinstance(item, str) and item.lstrip("-").isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int):
            raise problem(path, line, f"hash_ids must be integers, found {item!r}"[:300])
        if not -(2**63) <= item < 2**63:
            raise problem(path, line, "hash_ids must fit 64 bits (-2**63 up to 2**63 - 1)")
        out.append(item)
    return out


def _text(path: Path, line: int, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise problem(path, line, "prompt must be a non-empty string")
    return value


def _messages(path: Path, line: int, value: object) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise problem(path, line, "messages must be a non-empty list of {role, content} objects")
    out: list[Message] = []
    for item in value:
        role = item.get("role") if isinstance(item, dict) else None
        content = item.get("content") if isinstance(item, dict) else None
        if not isinstance(role, str) or not isinstance(content, str):
            raise problem(path, line, "each message needs a string role and a string content")
        out.append((role, content))
    return tuple(out)


def _count_prompts(rows: Rows, counter: TokenCounter) -> None:
    """Fill the prompt lengths of text rows with the counter's token counts."""
    assert rows.texts is not None
    plain = [(i, t) for i, t in enumerate(rows.texts) if isinstance(t, str)]
    try:
        counts = counter.count_texts([t for _, t in plain])
        for (i, _), n in zip(plain, counts, strict=True):
            rows.prompt_len[i] = n
        for i, t in enumerate(rows.texts):
            if not isinstance(t, str):
                rows.prompt_len[i] = counter.count_messages(t)
    except DatasetError:
        raise
    except Exception as exc:  # a tokenizer failing on odd text is the file's problem
        raise problem(rows.path, None, f"{counter.description} failed: {exc}"[:400]) from None

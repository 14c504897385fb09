"""Rows of a workload file, and the one function that turns them into a `RequestSet`.

Where it sits: between the file formats (`runners.workload.table`, `runners.workload.traces`,
`runners.workload.sharegpt`) and the request list. A format reads its file into `Rows` through
a `RowsBuilder`, which keeps only the rows the workload replays: the rows inside the time
window (trace time = timestamp minus the first row's), then the first `num_prompts` of them; it
stops reading as soon as it has them. `to_requests` applies the rest of the workload: output
lengths (the file's, or `output_len` for every request), send times (the trace's, times
`time_scale`, or the workload's arrival process when the file has no timestamps), sessions
(each turn after the previous one of its session) and shared prefixes (block hash ids, prefix
ids, or a session's history) as `PrefixChains`. Problems name the file and line.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runners.types import Workload
from runners.workload.arrays import IntArray
from runners.workload.arrivals import send_times, workload_streams
from runners.workload.chains import ChainBuilder, PrefixChains, flat_block_chains
from runners.workload.reader import MAX_REQUESTS, problem
from runners.workload.requests import RequestSet, TextPrompt, session_parents


@dataclass(frozen=True)
class BlockIds:
    """Hash ids of rows, flat: row i has the next ``counts[i]`` ids of `flat` (the column a
    columnar reader gives in place of one list per row)."""

    counts: IntArray
    flat: IntArray

    @classmethod
    def of(cls, ids: list[list[int]]) -> BlockIds:
        counts = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, int(counts.sum()))
        return cls(counts, flat)

    def lists(self) -> list[list[int]]:
        ends = np.cumsum(self.counts).tolist()
        flat = self.flat.tolist()
        return [
            flat[end - count : end] for end, count in zip(ends, self.counts.tolist(), strict=True)
        ]


@dataclass
class Rows:
    """The kept rows of one file, in file order (lists of equal length; None = no column)."""

    path: Path
    line: list[int] = field(default_factory=list)
    prompt_len: list[int] = field(default_factory=list)
    output_len: list[int] = field(default_factory=list)  # -1: not given
    timestamp_s: list[float] | None = None
    hash_ids: list[list[int]] | None = None
    blocks: BlockIds | None = None  # the hash ids in columns (then `hash_ids` is None)
    prefix: list[tuple[str, int] | None] | None = None  # (prefix id, its tokens)
    session: list[str | None] | None = None
    turn: list[int | None] | None = None
    texts: list[TextPrompt] | None = None
    block_size: int = 512
    rows_seen: int = 0

    @property
    def size(self) -> int:
        return len(self.prompt_len)


class RowsBuilder:
    """Collects the rows a workload replays while a format reads its file.

    `add` returns False once nothing more is wanted (the window has passed or `num_prompts`
    rows are in), so the reader can stop. Timestamps must never go backwards.
    """

    def __init__(self, path: Path, workload: Workload, block_size: int = 512) -> None:
        self.rows = Rows(path, block_size=block_size)
        self.limit, self.window_start, self.window_end = replay_bounds(workload)
        self.first_s: float | None = None
        self.last_s = -math.inf
        self.last_line = 0

    def add(
        self,
        line: int,
        prompt_len: int,
        output_len: int = -1,
        *,
        timestamp_s: float | None = None,
        hash_ids: list[int] | None = None,
        prefix: tuple[str, int] | None = None,
        session: str | None = None,
        turn: int | None = None,
        text: TextPrompt | None = None,
    ) -> bool:
        rows = self.rows
        rows.rows_seen += 1
        path = rows.path
        if timestamp_s is not None:
            if not math.isfinite(timestamp_s):
                raise problem(path, line, f"timestamp {timestamp_s} is not a finite number")
            if timestamp_s < self.last_s:
                raise problem(
                    path,
                    line,
                    f"timestamp {timestamp_s:g} s goes backwards (line {self.last_line} has "
                    f"{self.last_s:g} s); a trace must be sorted by time",
                )
            if self.first_s is None:
                if rows.rows_seen > 1:
                    raise problem(path, line, "a timestamp, but the rows before have none")
                self.first_s = timestamp_s
            self.last_s, self.last_line = timestamp_s, line
            trace_s = timestamp_s - self.first_s
            if trace_s >= self.window_end:
                return False
            if trace_s < self.window_start:
                return True
        elif self.first_s is not None:
            raise problem(path, line, "no timestamp, but the rows before have one")
        elif self.window_start > 0 or math.isfinite(self.window_end):
            raise problem(path, line, "the workload sets a time window, but the rows have no time")
        if timestamp_s is not None and self.first_s is not None:
            _append(rows, "timestamp_s", timestamp_s - self.first_s)
        # (the optional columns a format never gives cost no call)
        if hash_ids is not None or rows.hash_ids is not None:
            _append(rows, "hash_ids", hash_ids)
        if prefix is not None or rows.prefix is not None:
            _append(rows, "prefix", prefix)
        if session is not None or rows.session is not None:
            _append(rows, "session", session)
        if turn is not None or rows.turn is not None:
            _append(rows, "turn", turn)
        if text is not None or rows.texts is not None:
            _append(rows, "texts", text)
        rows.line.append(line)
        rows.prompt_len.append(prompt_len)
        rows.output_len.append(output_len)
        return rows.size < self.limit


def replay_bounds(workload: Workload) -> tuple[int, float, float]:
    """(most rows kept, start, end of the window of trace time) a workload replays of a file."""
    start = workload.window_start_s
    return min(workload.num_prompts, MAX_REQUESTS), start, start + workload.window_s


def _append(rows: Rows, name: str, value: object) -> None:
    """Append to an optional column, creating it (padded with None) on its first value."""
    column = getattr(rows, name)
    if column is None:
        if value is None:
            return
        column = [None] * rows.size
        setattr(rows, name, column)
    column.append(value)


def to_requests(workload: Workload, rows: Rows) -> RequestSet:
    """The request list of `workload` from the rows its file gave."""
    path = rows.path
    n = rows.size
    if n == 0:
        raise problem(path, None, f"no request to replay ({_scope(workload, rows)})")
    if rows.timestamp_s is not None and not math.isinf(workload.request_rate):
        raise problem(
            path,
            None,
            "the trace has timestamps, so workload.request_rate does not apply; use "
            "workload.time_scale to replay it faster or slower",
        )
    if rows.timestamp_s is None and workload.time_scale != 1.0:
        raise problem(
            path, None, "workload.time_scale applies to traces with timestamps; this file has none"
        )
    output = np.array(rows.output_len, dtype=np.int64)
    if workload.output_len is not None:
        output[:] = workload.output_len
    elif (missing := np.nonzero(output < 1)[0]).size:
        line = rows.line[int(missing[0])]
        raise problem(
            path, line, "no output length; give one in the file or set workload.output_len"
        )
    prompt = np.array(rows.prompt_len, dtype=np.int64)
    parent = _parents(rows)
    chains = _chains(rows, parent)
    if n < workload.num_prompts:
        raise problem(
            path,
            None,
            f"only {n} requests to replay ({_scope(workload, rows)}), {workload.num_prompts} "
            f"requested; set workload.num_prompts to at most {n}",
        )
    return RequestSet(
        request_id=np.arange(n, dtype=np.int64),
        prompt_len=prompt,
        output_len=output,
        send_s=_send_times(workload, rows),
        max_concurrency=workload.max_concurrency,
        parent=parent,
        chains=chains,
        texts=None if rows.texts is None else tuple(rows.texts),
    )


def _scope(workload: Workload, rows: Rows) -> str:
    if rows.timestamp_s is None and workload.window_start_s == 0:
        return f"{rows.rows_seen} rows in the file"
    end = workload.window_start_s + workload.window_s
    return f"trace window {workload.window_start_s:g} s to {end:g} s"


def _send_times(workload: Workload, rows: Rows) -> np.ndarray:
    if rows.timestamp_s is None:
        return send_times(workload, workload_streams(workload)[1])
    trace = np.array(rows.timestamp_s, dtype=np.float64)
    scaled: np.ndarray = (trace - workload.window_start_s) * workload.time_scale
    return scaled


def _parents(rows: Rows) -> np.ndarray | None:
    """Previous turn of each row's session (-1: first turn kept)."""
    if rows.session is None:
        return None
    parent = np.full(rows.size, -1, dtype=np.int64)
    last: dict[str, tuple[int, int | None]] = {}
    for i, session in enumerate(rows.session):
        if session is None:
            continue
        turn = rows.turn[i] if rows.turn is not None else None
        before = last.get(session)
        if before is not None:
            previous, previous_turn = before
            if turn is not None and previous_turn is not None and turn <= previous_turn:
                raise problem(
                    rows.path,
                    rows.line[i],
                    f"turn {turn} of session {session!r} comes after its turn {previous_turn} "
                    f"(line {rows.line[previous]}); a session's turns must be in order",
                )
            parent[i] = previous
        last[session] = (i, turn)
    return parent if bool((parent >= 0).any()) else None


def _chains(rows: Rows, parent: np.ndarray | None) -> PrefixChains | None:
    blocks = rows.blocks
    if blocks is None and rows.hash_ids is not None:
        blocks = BlockIds.of([row or [] for row in rows.hash_ids])
    if blocks is None and rows.prefix is None and parent is None:
        return None
    if blocks is not None and rows.prefix is None and parent is None:
        _check_blocks(rows, blocks.counts)
        prompts = np.asarray(rows.prompt_len, dtype=np.int64)
        fast = flat_block_chains(blocks.counts, blocks.flat, prompts, rows.block_size)
        if fast is not None:
            return fast
    hash_ids = rows.hash_ids if rows.blocks is None else rows.blocks.lists()
    builder = ChainBuilder()
    has_child = session_parents(parent, rows.size)
    chains: list[list[int]] = []
    prefix_tokens: dict[str, tuple[int, int]] = {}
    for i in range(rows.size):
        line, prompt = rows.line[i], rows.prompt_len[i]
        ids = hash_ids[i] if hash_ids is not None else None
        prefix = rows.prefix[i] if rows.prefix is not None else None
        p = -1 if parent is None else int(parent[i])
        if ids:
            chains.append(_block_chain(rows, i, ids, builder))
            continue
        base: list[int] = []
        if p >= 0:
            base = chains[p]
            if prompt < builder.covered(base):
                raise problem(
                    rows.path,
                    line,
                    f"this turn has {prompt} input tokens, fewer than the "
                    f"{rows.prompt_len[p]} of its previous turn (line {rows.line[p]}); a "
                    "turn's input counts the whole prompt, history included",
                )
        elif prefix is not None:
            key, tokens = prefix
            seen = prefix_tokens.setdefault(key, (tokens, line))
            if seen[0] != tokens:
                raise problem(
                    rows.path,
                    line,
                    f"prefix {key!r} has {tokens} tokens here but {seen[0]} on line {seen[1]}",
                )
            if tokens > prompt:
                raise problem(
                    rows.path, line, f"prefix of {tokens} tokens is longer than the prompt"
                )
            base = builder.extend([], ("prefix", key), tokens)
        chains.append(builder.whole_prompt(base, prompt, i) if has_child[i] else base)
    return builder.finish(chains)


def _check_blocks(rows: Rows, counts: IntArray, first: int = 0) -> None:
    """The `counts` hash ids of rows `first`, `first + 1`, ... fit their prompts (the last
    block of a prompt may be partial)."""
    prompts = np.asarray(rows.prompt_len[first : first + len(counts)], dtype=np.int64)
    over = np.nonzero((counts - 1) * rows.block_size >= prompts)[0]
    if over.size:
        i = int(over[0])
        raise problem(
            rows.path,
            rows.line[first + i],
            f"{counts[i]} hash ids name blocks of {rows.block_size} tokens, more than the "
            f"{prompts[i]} input tokens hold (the last block may be partial)",
        )


def _block_chain(rows: Rows, i: int, ids: list[int], builder: ChainBuilder) -> list[int]:
    """Blocks of `block_size` tokens named by hash ids; the last may be partial."""
    block = rows.block_size
    prompt = rows.prompt_len[i]
    _check_blocks(rows, np.array([len(ids)], dtype=np.int64), i)
    lengths = [block] * len(ids)
    lengths[-1] = min(block, prompt - block * (len(ids) - 1))
    return builder.extend_all([], ids, lengths)

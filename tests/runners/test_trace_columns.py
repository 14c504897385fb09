"""The columnar trace readers give the request list the line-by-line readers give, or step aside.

Traces come from scripts/make_traces.py (the published formats' own spelling); the chunk size
is made small so that windows, limits and days cross chunk boundaries.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runners.errors import DatasetError
from runners.types import Workload
from runners.workload import RequestSet, make_requests
from runners.workload import columns as columns_module
from runners.workload.chains import _dense_ranks, block_chains
from runners.workload.columns import azure_columns, mooncake_columns
from runners.workload.rows import Rows, to_requests
from runners.workload.traces import (
    read_azure,
    read_azure_lines,
    read_mooncake,
    read_mooncake_lines,
)

ROOT = Path(__file__).resolve().parents[2]
Reader = Callable[[Path, Workload], Rows]
Columns = Callable[[Path, Workload], "Rows | None"]
FORMATS: dict[str, tuple[Columns, Reader]] = {
    "mooncake": (mooncake_columns, read_mooncake_lines),
    "azure": (azure_columns, read_azure_lines),
}


def make_traces() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_traces", ROOT / "scripts/make_traces.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("traces")
    make = make_traces()
    n, duration_s = 3000, 30 * 3600.0  # over a day: the Azure dates cross midnight
    return {
        "mooncake": make.write_mooncake(folder / "m.jsonl", n, duration_s, 3),
        "azure": make.write_azure(folder / "a.csv", n, duration_s, 3, "code"),
    }


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columns_module, "CHUNK_BYTES", 4096)


def assert_same_requests(new: RequestSet, old: RequestSet) -> None:
    for name in ("request_id", "prompt_len", "output_len", "send_s", "parent"):
        a, b = getattr(new, name), getattr(old, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert new.max_concurrency == old.max_concurrency and new.texts == old.texts
    assert (new.chains is None) == (old.chains is None)
    if new.chains is not None and old.chains is not None:
        for name in ("offsets", "segments", "start", "end"):
            assert np.array_equal(getattr(new.chains, name), getattr(old.chains, name)), name


def trace_workload(dataset: str, path: Path, **fields: object) -> Workload:
    values: dict[str, object] = {"num_prompts": 3000, **fields}
    return Workload("w", dataset, path=str(path), **values)  # type: ignore[arg-type]


def both_paths(dataset: str, path: Path, **fields: object) -> tuple[Rows | None, Rows]:
    workload = trace_workload(dataset, path, **fields)
    columns, lines = FORMATS[dataset]
    return columns(path, workload), lines(path, workload)


WORKLOADS: list[dict[str, object]] = [
    {},
    {"num_prompts": 777},  # the limit falls inside a chunk
    {"time_scale": 0.1},
    {"window_start_s": 20_000.0, "window_s": 30_000.0, "num_prompts": 900},
    {"window_start_s": 5_000.0, "time_scale": 2.5, "num_prompts": 2000},
    {"output_len": 64, "num_prompts": 10},
]


@pytest.mark.parametrize("dataset", list(FORMATS))
@pytest.mark.parametrize("fields", WORKLOADS, ids=lambda f: ",".join(f) or "all")
def test_the_columnar_path_gives_the_line_by_line_request_list(
    traces: dict[str, Path], dataset: str, fields: dict[str, object]
) -> None:
    path = traces[dataset]
    workload = trace_workload(dataset, path, **fields)
    fast, slow = both_paths(dataset, path, **fields)
    assert fast is not None  # the generated traces take the columnar path
    assert (fast.line, fast.rows_seen) == (slow.line, slow.rows_seen)
    assert fast.timestamp_s == slow.timestamp_s
    old = to_requests(workload, slow)
    assert_same_requests(to_requests(workload, fast), old)
    assert_same_requests(make_requests(workload), old)
    if dataset == "mooncake" and old.size > 100:
        assert old.chains is not None and old.chains.segment_count > 100  # shared prefixes


def test_a_trace_without_blanks_takes_the_columnar_path(
    traces: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "compact.jsonl"
    path.write_text(traces["mooncake"].read_text().replace(", ", ",").replace(": ", ":"))
    workload = trace_workload("mooncake", path, num_prompts=1234)
    fast = mooncake_columns(path, workload)
    assert fast is not None
    old = to_requests(workload, read_mooncake_lines(path, workload))
    assert_same_requests(to_requests(workload, fast), old)


def test_a_window_past_the_end_is_the_same_error_on_both_paths(traces: dict[str, Path]) -> None:
    for dataset, path in traces.items():
        fields = {"window_start_s": 1e9, "num_prompts": 5}
        fast, slow = both_paths(dataset, path, **fields)
        assert fast is not None and fast.rows_seen == slow.rows_seen == 3000
        workload = trace_workload(dataset, path, **fields)
        messages = []
        for rows in (fast, slow):
            with pytest.raises(DatasetError) as caught:
                to_requests(workload, rows)
            messages.append(str(caught.value))
        assert messages[0] == messages[1] and "no request to replay" in messages[0]


def rewrite(path: Path, target: Path, line: int, edit: Callable[[str], str]) -> Path:
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = edit(lines[line - 1])
    target.write_text("".join(lines))
    return target


OTHER_SPELLINGS: list[tuple[str, Callable[[str], str]]] = [
    ("mooncake", lambda s: s.replace(": ", ":  ")),  # other spacing
    ("mooncake", lambda s: s.replace('"hash_ids"', '"extra": 1, "hash_ids"')),
    ("mooncake", lambda s: s.replace("}", "}\r")),
    ("mooncake", lambda s: s + "\n"),  # a blank line
    ("mooncake", lambda s: re.sub(r'"timestamp": ([0-9]+)', r'"timestamp": \1.0', s)),
    ("azure", lambda s: s.replace(",", ", ")),
    ("azure", lambda s: s.replace(",", "+00:00,", 1)),  # a UTC offset
    ("azure", lambda s: s.replace("0,", ",", 1)),  # 6 digits of seconds' fraction, not 7
    ("azure", lambda s: '"' + s.replace(",", '",', 1)),  # a quoted cell
    ("azure", lambda s: s.replace("-", "/")),  # not a date: the error
    ("mooncake", lambda s: re.sub(r'"output_length": [0-9]+', '"output_length": 0', s)),
    ("azure", lambda s: re.sub(r",[0-9]+\n", ",0\n", s)),  # no output tokens: the error
]


@pytest.mark.parametrize(("dataset", "edit"), OTHER_SPELLINGS)
def test_other_spellings_step_aside_to_the_line_by_line_reader(
    traces: dict[str, Path], tmp_path: Path, dataset: str, edit: Callable[[str], str]
) -> None:
    path = rewrite(traces[dataset], tmp_path / "t.data", 1500, edit)
    assert path.read_bytes() != traces[dataset].read_bytes()
    workload = trace_workload(dataset, path)
    columns, lines = FORMATS[dataset]
    assert columns(path, workload) is None
    with_lines: RequestSet | str
    try:
        with_lines = to_requests(workload, lines(path, workload))
    except DatasetError as exc:  # (a spelling the format does not allow: the same error)
        with_lines = str(exc)
    try:
        assert_same_requests(make_requests(workload), with_lines)  # type: ignore[arg-type]
    except DatasetError as exc:
        assert str(exc) == with_lines


def test_a_broken_line_deep_in_a_trace_is_named(traces: dict[str, Path], tmp_path: Path) -> None:
    path = rewrite(traces["mooncake"], tmp_path / "t.jsonl", 2345, lambda s: s[: len(s) // 2])
    workload = Workload("w", "mooncake", 3000, path=str(path))
    with pytest.raises(DatasetError, match=r"t\.jsonl:2345: not valid JSON"):
        make_requests(workload)


def test_timestamps_going_back_after_the_window_are_never_read(
    traces: dict[str, Path], tmp_path: Path
) -> None:
    backwards = lambda s: s.replace('"timestamp": ', '"timestamp": -', 1)  # noqa: E731
    path = rewrite(traces["mooncake"], tmp_path / "t.jsonl", 2900, backwards)
    short = Workload("w", "mooncake", 100, path=str(path))
    assert mooncake_columns(path, short) is not None  # stops long before line 2900
    assert_same_requests(
        make_requests(short), to_requests(short, read_mooncake_lines(path, short))
    )
    with pytest.raises(DatasetError, match=r"t\.jsonl:2900: timestamp -[0-9.]+ s goes backwards"):
        make_requests(dataclasses.replace(short, num_prompts=3000))


def test_dense_ranks_are_the_ranks_unique_gives() -> None:
    rng = np.random.default_rng(0)
    for values in (
        rng.integers(0, 50, 400),  # small ids: counted without sorting
        rng.integers(0, 10**12, 400),  # sparse ids
        rng.integers(-5, 5, 400),
    ):
        unique, inverse = np.unique(values, return_inverse=True)
        count, ranks = _dense_ranks(values.astype(np.int64))
        assert count == len(unique) and np.array_equal(ranks, inverse)


@pytest.fixture(scope="module")
def small_traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("small")
    make = make_traces()
    return {
        "mooncake": make.write_mooncake(folder / "m.jsonl", 40, 600.0, 5).read_bytes(),
        "azure": make.write_azure(folder / "a.csv", 40, 600.0, 5, "code").read_bytes(),
    }


def outcome(read: Callable[[], Rows], workload: Workload) -> RequestSet | str:
    try:
        return to_requests(workload, read())
    except DatasetError as exc:
        return str(exc)


def assert_same_outcome(new: RequestSet | str, old: RequestSet | str) -> None:
    """The same request list, or the same error message."""
    if isinstance(old, str) or isinstance(new, str):
        assert new == old
    else:
        assert_same_requests(new, old)


EDIT_BYTES = st.sampled_from([*b'0123456789 ,:-."[]{}\n\rTZ+e\x00\xff'])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dataset=st.sampled_from(sorted(FORMATS)),
    edits=st.lists(st.tuples(st.floats(0, 1), EDIT_BYTES, st.booleans()), min_size=1, max_size=3),
    num_prompts=st.sampled_from([5, 40]),
)
def test_any_edit_of_a_trace_gives_one_result_on_both_paths(
    small_traces: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    dataset: str,
    edits: list[tuple[float, int, bool]],
    num_prompts: int,
) -> None:
    """Whatever a byte edit makes of a trace, the reader gives the line-by-line reader's
    request list or its error message."""
    data = bytearray(small_traces[dataset])
    for where, byte, insert in edits:
        at = min(len(data) - 1, int(where * len(data)))
        if insert:
            data.insert(at, byte)
        else:
            data[at] = byte
    path = tmp_path_factory.mktemp("edit") / "t.data"
    path.write_bytes(bytes(data))
    workload = trace_workload(dataset, path, num_prompts=num_prompts)
    lines = FORMATS[dataset][1]
    reader = read_mooncake if dataset == "mooncake" else read_azure
    new = outcome(lambda: reader(path, workload), workload)
    assert_same_outcome(new, outcome(lambda: lines(path, workload), workload))


CANONICAL_IDS = {  # the hash-id lists the columnar path must read itself: json.dumps' spelling
    ", ": re.compile(r"(?:(?:0|[1-9][0-9]{0,17})(?:, (?:0|[1-9][0-9]{0,17}))*)?"),
    ",": re.compile(r"(?:(?:0|[1-9][0-9]{0,17})(?:,(?:0|[1-9][0-9]{0,17}))*)?"),
}


def with_hash_ids(data: bytes, separator: str, line: int, ids: str) -> bytes:
    """`data` (a Mooncake trace) spelled with `separator` after commas and colons, its line
    `line` listing `ids` as its hash ids."""
    lines = data.decode().replace(", ", separator).replace(": ", ":" + separator[1:])
    rows = lines.splitlines(keepends=True)
    head = rows[line - 1].split("[", 1)[0]
    rows[line - 1] = head + "[" + ids + "]}\n"
    return "".join(rows).encode()


def assert_one_result(path: Path, workload: Workload, separator: str, ids: str) -> None:
    fast = mooncake_columns(path, workload)
    assert (fast is not None) == bool(CANONICAL_IDS[separator].fullmatch(ids)), ids
    new = outcome(lambda: read_mooncake(path, workload), workload)
    assert_same_outcome(new, outcome(lambda: read_mooncake_lines(path, workload), workload))


ID_LISTS = [
    "", "0", "7", "0, 0", "12, 0, 345", "999999999999999999", "1, 2, 3",  # canonical (spaced)
    "1,2", "1, 2,3", ", 1", "1, ", "1,, 2", "1, , 2", "1,  2", " 1", "1 ", "1 , 2", "1 2",
    "01", "1, 02", "00", "1000000000000000000", "99999999999999999999999", ",", " ", ", ",
]  # fmt: skip


@pytest.mark.parametrize("separator", [", ", ","])
@pytest.mark.parametrize("ids", ID_LISTS)
def test_only_canonical_hash_id_lists_take_the_columnar_path(
    small_traces: dict[str, bytes], tmp_path: Path, separator: str, ids: str
) -> None:
    """Every other spelling of a list (blanks, separators, leading zeros, ids past 64 bits)
    steps aside, and both paths give one result."""
    ids = ids if separator == ", " else ids.replace(", ", ",")
    for line in (1, 20, 40):  # the first, a middle and the last line
        path = tmp_path / f"t{line}.jsonl"
        path.write_bytes(with_hash_ids(small_traces["mooncake"], separator, line, ids))
        assert_one_result(path, trace_workload("mooncake", path, num_prompts=40), separator, ids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    separator=st.sampled_from([", ", ","]),
    ids=st.text(st.sampled_from("0123456789, "), max_size=14),
    line=st.integers(1, 40),
)
def test_any_hash_id_list_gives_one_result_on_both_paths(
    small_traces: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    separator: str,
    ids: str,
    line: int,
) -> None:
    path = tmp_path_factory.mktemp("ids") / "t.jsonl"
    path.write_bytes(with_hash_ids(small_traces["mooncake"], separator, line, ids))
    assert_one_result(path, trace_workload("mooncake", path, num_prompts=40), separator, ids)


def chained_blocks(
    rows: list[list[int]], prompts: list[int], block: int
) -> dict[int, tuple[int, int]] | None:
    """The tokens (start, end) each id covers when the ids are chained (each id always after
    the same id, at the same place, with the same length), else None: one row at a time."""
    seen: dict[int, tuple[int | None, int, int]] = {}
    for ids, prompt in zip(rows, prompts, strict=True):
        for place, key in enumerate(ids):
            length = min(block, prompt - block * place) if place == len(ids) - 1 else block
            found = (ids[place - 1] if place else None, place * block, length)
            if seen.setdefault(key, found) != found:
                return None
    return {key: (start, start + length) for key, (_, start, length) in seen.items()}


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 6), max_size=4), min_size=1, max_size=6),
    rests=st.lists(st.integers(1, 4), min_size=6, max_size=6),
)
def test_chained_ids_are_told_from_other_ids_as_row_by_row(
    rows: list[list[int]], rests: list[int]
) -> None:
    """Ids after other ids, at other places or with other lengths (short last blocks) leave
    the ids to `ChainBuilder`; chained ones are numbered densely with their token ranges."""
    block = 4
    pairs = zip(rows, rests[: len(rows)], strict=True)
    prompts = [block * max(len(ids) - 1, 0) + rest for ids, rest in pairs]
    expected = chained_blocks(rows, prompts, block)
    chains = block_chains(rows, prompts, block)
    if expected is None or not any(rows):
        assert chains is None
        return
    assert chains is not None
    keys = sorted(expected)
    assert chains.segments.tolist() == [keys.index(key) for ids in rows for key in ids]
    ranges = zip(chains.start.tolist(), chains.end.tolist(), strict=True)
    assert list(ranges) == [expected[k] for k in keys]
    assert np.diff(chains.offsets).tolist() == [len(ids) for ids in rows]


@pytest.mark.parametrize(
    ("rows", "prompts"),
    [
        ([[1, 2], [3, 2]], [8, 8]),  # 2 after two ids
        ([[1, 2], [2]], [8, 4]),  # 2 at two places
        ([[1, 2], [1, 2]], [8, 7]),  # 2 with two lengths (a short block once)
        ([[1, 2], [1, 2, 3]], [7, 12]),  # 2 short, then inside a row
        ([[1, 2, 3], [1, 2]], [12, 7]),  # 2 inside a row, then short
    ],
)
def test_ids_that_are_not_chained_are_told(rows: list[list[int]], prompts: list[int]) -> None:
    assert chained_blocks(rows, prompts, 4) is None
    assert block_chains(rows, prompts, 4) is None

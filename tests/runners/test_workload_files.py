"""Workload files: each format read into the one request list; each bad file, one clear error."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runners.errors import DatasetError
from runners.types import Workload
from runners.workload import FORMATS, TokenPrompts, make_requests


def jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def file_workload(path: Path, dataset: str, n: int, **fields: object) -> Workload:
    return Workload("w", dataset, n, path=str(path), **fields)  # type: ignore[arg-type]


# --- token-count rows -------------------------------------------------------------------------


def test_a_timestamped_jsonl_is_replayed_at_its_own_times_in_a_window(tmp_path: Path) -> None:
    rows = [{"timestamp": 100 + t, "input_tokens": 10 + t, "output_tokens": 5} for t in range(10)]
    path = jsonl(tmp_path / "t.jsonl", rows)
    requests = make_requests(file_workload(path, "jsonl", 10))
    assert requests.send_s.tolist() == [float(t) for t in range(10)]  # from the first row
    assert requests.prompt_len.tolist() == list(range(10, 20))
    window = file_workload(path, "jsonl", 3, window_start_s=2.5, window_s=4.0, time_scale=0.5)
    picked = make_requests(window)
    assert picked.prompt_len.tolist() == [13, 14, 15]  # the first 3 of the window
    assert picked.send_s.tolist() == [0.25, 0.75, 1.25]  # (t - 2.5) x 0.5


def test_a_fixed_output_len_replaces_the_files(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "t.jsonl", [{"input_tokens": 7, "output_tokens": 3}] * 4)
    requests = make_requests(file_workload(path, "jsonl", 4, output_len=9))
    assert requests.output_len.tolist() == [9] * 4
    assert requests.send_s.tolist() == [0.0] * 4  # no timestamps: the arrival process


def test_rows_without_timestamps_take_the_workloads_arrivals(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "t.jsonl", [{"input_tokens": 7, "output_tokens": 3}] * 200)
    poisson = make_requests(file_workload(path, "jsonl", 200, request_rate=20.0, seed=3))
    synthetic = make_requests(Workload("p", "random", 200, 7, 3, request_rate=20.0, seed=3))
    np.testing.assert_array_equal(poisson.send_s, synthetic.send_s)


def test_csv_rows_with_hash_ids_and_sessions(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "input_tokens,output_tokens,hash_ids,session_id,turn\n"
        '1100,4,"[1, 2, 3]",,\n'
        "1030,4,1 2 9,,\n"
        "50,8,,s,1\n"
        "90,8,,s,2\n"
    )
    requests = make_requests(file_workload(path, "csv", 4, hash_block_size=512))
    chains = requests.chains
    assert chains is not None
    assert chains.shared_tokens(0, 1) == 1024  # two full blocks in common
    assert chains.chain_end().tolist() == [1100, 1030, 50, 50]
    assert requests.parent is not None and requests.parent.tolist() == [-1, -1, -1, 2]
    assert chains.shared_tokens(2, 3) == 50  # a later turn starts with the whole previous prompt


def test_prefix_ids_share_their_tokens(tmp_path: Path) -> None:
    rows = [
        {"input_tokens": 300, "output_tokens": 2, "prefix_id": "sys-a", "prefix_tokens": 200},
        {"input_tokens": 250, "output_tokens": 2, "prefix_id": "sys-b", "prefix_tokens": 200},
        {"input_tokens": 220, "output_tokens": 2, "prefix_id": "sys-a", "prefix_tokens": 200},
    ]
    requests = make_requests(file_workload(jsonl(tmp_path / "p.jsonl", rows), "jsonl", 3))
    assert requests.chains is not None
    assert requests.chains.shared_tokens(0, 2) == 200
    assert requests.chains.shared_tokens(0, 1) == 0
    ids = [p.prompt_ids for p in TokenPrompts(requests, 5000, 0)]
    assert ids[0][:200] == ids[2][:200] and ids[0][200:220] != ids[2][200:220]
    assert ids[0][:200] != ids[1][:200]
    assert [len(i) for i in ids] == [300, 250, 220]


# --- text rows and tokenization ---------------------------------------------------------------


def test_text_prompts_are_counted_by_the_estimate_and_sent_as_text(tmp_path: Path) -> None:
    rows = [
        {"prompt": "x" * 40, "output_tokens": 5},
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        },
    ]
    requests = make_requests(
        file_workload(jsonl(tmp_path / "p.jsonl", rows), "jsonl", 2, output_len=6)
    )
    assert requests.prompt_len.tolist() == [10, (2 + 4) + (1 + 4)]  # 4 bytes a token, 4 a message
    assert requests.texts == ("x" * 40, (("system", "be brief"), ("user", "hi")))


def make_tokenizer(folder: Path) -> Path:
    """A tiny word-level tokenizer saved like a model folder (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "again": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    return folder


def test_a_local_tokenizer_counts_text_prompts(tmp_path: Path) -> None:
    from runners.workload import local_tokenizer

    folder = make_tokenizer(tmp_path / "model")
    assert local_tokenizer(str(folder)) == str(folder.resolve())
    assert local_tokenizer(str(tmp_path)) == ""  # a folder without tokenizer files
    assert local_tokenizer("nobody/not-cached-anywhere") == ""
    path = jsonl(tmp_path / "p.jsonl", [{"prompt": "hello world hello again", "output_tokens": 2}])
    counted = make_requests(file_workload(path, "jsonl", 1, tokenizer=str(folder)))
    estimated = make_requests(file_workload(path, "jsonl", 1))
    assert counted.prompt_len.tolist() == [4]
    assert estimated.prompt_len.tolist() == [6]  # 23 bytes / 4, rounded up


def test_a_tokenizer_missing_on_this_machine_is_an_error_not_an_estimate(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "p.jsonl", [{"prompt": "hello", "output_tokens": 2}])
    with pytest.raises(DatasetError, match="cannot be loaded from local files"):
        make_requests(file_workload(path, "jsonl", 1, tokenizer=str(tmp_path / "absent")))


# --- public trace formats ---------------------------------------------------------------------


def test_a_mooncake_trace_shares_its_leading_blocks(tmp_path: Path) -> None:
    rows = [
        {"timestamp": 0, "input_length": 1500, "output_length": 10, "hash_ids": [0, 1, 2]},
        {"timestamp": 250, "input_length": 1200, "output_length": 20, "hash_ids": [0, 1, 3]},
        {"timestamp": 1000, "input_length": 600, "output_length": 30, "hash_ids": [4, 1]},
    ]
    requests = make_requests(file_workload(jsonl(tmp_path / "m.jsonl", rows), "mooncake", 3))
    assert requests.send_s.tolist() == [0.0, 0.25, 1.0]  # milliseconds
    assert requests.output_len.tolist() == [10, 20, 30]
    chains = requests.chains
    assert chains is not None
    assert chains.shared_tokens(0, 1) == 1024
    assert chains.shared_tokens(0, 2) == 0  # block 1 after another first block is another block
    ids = [p.prompt_ids for p in TokenPrompts(requests, 5000, 0)]
    assert ids[0][:1024] == ids[1][:1024] and ids[0][1024:1100] != ids[1][1024:1100]
    assert ids[0][512:1024] != ids[2][512:600]


def test_an_azure_trace_is_read_with_its_datetimes(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.0000000,396,109\n"
        "2023-11-16 18:16:00.1000000+00:00,879,20\n"
    )
    requests = make_requests(file_workload(path, "azure", 3))
    np.testing.assert_allclose(requests.send_s, [0.0, 3.31941, 13.41941], atol=1e-6)
    assert requests.prompt_len.tolist() == [374, 396, 879]
    assert requests.output_len.tolist() == [44, 109, 20]


# --- bad files: one clear error naming the file and the line ---------------------------------

BAD: list[tuple[str, str, str, str]] = [
    # (case, dataset, file content, expected message part)
    ("empty-file", "jsonl", "", "the file is empty"),
    ("blank-lines-only", "jsonl", "\n\n", "no request to replay"),
    (
        "malformed-line-in-the-middle",
        "jsonl",
        '{"input_tokens": 5, "output_tokens": 2}\n{"input_tokens": 5,\n'
        '{"input_tokens": 5, "output_tokens": 2}\n',
        ":2: not valid JSON",
    ),
    (
        "timestamps-backwards",
        "mooncake",
        '{"timestamp": 10, "input_length": 5, "output_length": 2, "hash_ids": [1]}\n'
        '{"timestamp": 20, "input_length": 5, "output_length": 2, "hash_ids": [1]}\n'
        '{"timestamp": 15, "input_length": 5, "output_length": 2, "hash_ids": [1]}\n',
        ":3: timestamp 0.015 s goes backwards (line 2 has 0.02 s)",
    ),
    ("not-an-object", "jsonl", "[1, 2]\n", ":1: expected a JSON object, found list"),
    ("no-prompt-field", "jsonl", '{"input_token": 5}\n', ":1: a row needs exactly one of"),
    (
        "mixed-kinds",
        "jsonl",
        '{"input_tokens": 5, "output_tokens": 2}\n{"prompt": "hi", "output_tokens": 2}\n',
        ":2: a row of text prompts, but line 1 has token counts",
    ),
    (
        "negative-length",
        "jsonl",
        '{"input_tokens": -5, "output_tokens": 2}\n',
        "input_tokens must",
    ),
    (
        "too-many-hash-ids",
        "mooncake",
        '{"timestamp": 0, "input_length": 600, "output_length": 2, "hash_ids": [1, 2, 3]}\n',
        ":1: 3 hash ids name blocks of 512 tokens, more than the 600",
    ),
    (
        "turn-out-of-order",
        "jsonl",
        '{"input_tokens": 5, "output_tokens": 2, "session_id": "a", "turn": 2}\n'
        '{"input_tokens": 9, "output_tokens": 2, "session_id": "a", "turn": 1}\n',
        ":2: turn 1 of session 'a' comes after its turn 2",
    ),
    (
        "turn-shorter-than-history",
        "jsonl",
        '{"input_tokens": 50, "output_tokens": 2, "session_id": "a"}\n'
        '{"input_tokens": 9, "output_tokens": 2, "session_id": "a"}\n',
        ":2: this turn has 9 input tokens, fewer than the 50 of its previous turn",
    ),
    ("no-output-length", "jsonl", '{"input_tokens": 5}\n', ":1: no output length"),
    ("azure-header", "azure", "time,in,out\n1,2,3\n", ":1: an Azure trace's header has"),
    (
        "azure-bad-time",
        "azure",
        "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,5,5\n",
        ":2: TIMESTAMP 'yesterday' is neither",
    ),
    ("csv-ragged", "csv", "input_tokens,output_tokens\n5,2\n5\n", ":3: 1 cells, but the header"),
    ("sharegpt-not-json", "sharegpt", "[{\n", ":2: not valid JSON"),
    (
        "mooncake-id-past-64-bits",
        "mooncake",
        '{"timestamp": 0, "input_length": 5, "output_length": 2, "hash_ids": [1]}\n'
        '{"timestamp": 1, "input_length": 5, "output_length": 2, '
        '"hash_ids": [18446744073709551616]}\n',
        ":2: hash_ids must fit 64 bits",
    ),
    (
        "jsonl-id-past-64-bits",
        "jsonl",
        '{"input_tokens": 5, "output_tokens": 2, "hash_ids": [-9223372036854775809]}\n',
        ":1: hash_ids must fit 64 bits",
    ),
    ("not-utf8", "jsonl", "\udcff", ":1: not UTF-8"),
]


@pytest.mark.parametrize(
    ("dataset", "content", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_a_bad_file_is_one_error_naming_the_file_and_line(
    tmp_path: Path, dataset: str, content: str, expected: str
) -> None:
    path = tmp_path / "bad.data"
    path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(DatasetError) as caught:
        make_requests(file_workload(path, dataset, 10))
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message, message
    assert "\n" not in message


def test_a_missing_file_and_a_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"absent.jsonl: no such file \(paths are relative"):
        make_requests(file_workload(tmp_path / "absent.jsonl", "jsonl", 1))
    with pytest.raises(DatasetError, match="is not a regular file"):
        make_requests(file_workload(tmp_path, "jsonl", 1))


def test_an_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(DatasetError, match=r"unknown dataset 'parquet' \(known: sharegpt-like"):
        make_requests(Workload("w", "parquet", 1, path="/x"))  # type: ignore[arg-type]


def test_a_window_needs_timestamps_and_timestamps_refuse_a_rate(tmp_path: Path) -> None:
    untimed = jsonl(tmp_path / "u.jsonl", [{"input_tokens": 5, "output_tokens": 2}])
    with pytest.raises(DatasetError, match=":1: the workload sets a time window"):
        make_requests(file_workload(untimed, "jsonl", 1, window_s=10.0))
    timed = jsonl(tmp_path / "t.jsonl", [{"timestamp": 0, "input_tokens": 5, "output_tokens": 2}])
    with pytest.raises(DatasetError, match=r"request_rate does not apply; use workload\.time_"):
        make_requests(file_workload(timed, "jsonl", 1, request_rate=5.0))


def test_too_few_requests_in_the_window_says_how_many_there_are(tmp_path: Path) -> None:
    rows = [{"timestamp": t, "input_tokens": 5, "output_tokens": 2} for t in range(10)]
    path = jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(DatasetError, match=r"only 3 requests to replay \(trace window 2 s to 5"):
        make_requests(file_workload(path, "jsonl", 5, window_start_s=2.0, window_s=3.0))


def test_reading_stops_once_the_requests_are_in(tmp_path: Path) -> None:
    """A huge trace costs what is replayed: a malformed line after the window is never read."""
    rows = [json.dumps({"timestamp": t, "input_tokens": 5, "output_tokens": 2}) for t in range(5)]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(rows) + "\n{broken\n")
    assert make_requests(file_workload(path, "jsonl", 3)).size == 3
    assert make_requests(file_workload(path, "jsonl", 2, window_s=2.0)).size == 2
    with pytest.raises(DatasetError, match=":6: not valid JSON"):
        make_requests(file_workload(path, "jsonl", 6))


@pytest.mark.parametrize("dataset", sorted(FORMATS))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=300))
def test_any_bytes_give_rows_or_a_dataset_error(
    tmp_path: Path, dataset: str, content: bytes
) -> None:
    """Each format's one entry point raises nothing but DatasetError, whatever the file holds."""
    path = tmp_path / f"fuzz-{dataset}"
    path.write_bytes(content)
    workload = file_workload(path, dataset, 3, output_len=4)
    with contextlib.suppress(DatasetError):
        FORMATS[dataset](path, workload)


def test_file_lists_are_cached_and_read_only(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "t.jsonl", [{"input_tokens": 5, "output_tokens": 2}] * 3)
    w = file_workload(path, "jsonl", 3)
    first = make_requests(w)
    assert make_requests(w) is first
    with pytest.raises(ValueError):
        first.prompt_len[0] = 1
    jsonl(path, [{"input_tokens": 6, "output_tokens": 2}] * 4)  # a new version of the file
    assert make_requests(w).prompt_len.tolist() == [6, 6, 6]
    assert math.isinf(w.window_s)


def test_chained_hash_ids_are_read_as_the_trie_would_name_them() -> None:
    """The fast path for already chained ids (Mooncake traces) shares exactly what the
    general one does, and ids that are not chained take the general one."""
    from runners.workload import ChainBuilder
    from runners.workload.chains import block_chains

    rng = np.random.default_rng(4)
    rows: list[list[int]] = []
    prompts: list[int] = []
    trunk = list(range(6))
    for i in range(40):
        keep = int(rng.integers(0, 6))
        own = int(rng.integers(1, 4))
        rows.append(trunk[:keep] + [100 + 10 * i + k for k in range(own)])
        prompts.append((keep + own - 1) * 16 + int(rng.integers(1, 17)))
    fast = block_chains(rows, prompts, 16)
    assert fast is not None
    builder = ChainBuilder()
    chains = []
    for ids, prompt in zip(rows, prompts, strict=True):
        lengths = [16] * len(ids)
        lengths[-1] = prompt - 16 * (len(ids) - 1)
        chains.append(builder.extend_all([], ids, lengths))
    slow = builder.finish(chains)
    assert fast.chain_end().tolist() == slow.chain_end().tolist()
    pairs = [(a, b) for a in range(40) for b in range(a + 1, 40)]
    assert [fast.shared_tokens(a, b) for a, b in pairs] == [
        slow.shared_tokens(a, b) for a, b in pairs
    ]
    assert block_chains([[1, 2], [3, 2]], [32, 32], 16) is None  # 2 follows two ids


def test_json_lines_take_blanks_around_an_object_and_nothing_after_it(tmp_path: Path) -> None:
    from runners.workload.reader import json_objects

    path = tmp_path / "rows.jsonl"
    path.write_text(' {"a": 1}\n{"b": 2}  \n{"c": 3}\n')
    assert [value for _, value in json_objects(path)] == [{"a": 1}, {"b": 2}, {"c": 3}]
    path.write_text('{"a": 1}\n{"b": 2} {"c": 3}\n')
    with pytest.raises(DatasetError, match=r":2: not valid JSON \(Extra data"):
        list(json_objects(path))

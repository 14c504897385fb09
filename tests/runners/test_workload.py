"""The one workload module: request lists that the simulator and the load generator share."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from runners.engines import resolve
from runners.errors import DatasetError
from runners.sim import simulate
from runners.types import Candidate, NodeGroup, ServingConfig, Workload
from runners.workload import RequestSet, TokenPrompts, make_requests
from runners.workload.prompts import BenchRequest


def token_prompts(requests: RequestSet, vocab_size: int, seed: int) -> list[BenchRequest]:
    return list(TokenPrompts(requests, vocab_size, seed))


PINNED = {
    # digests of (prompt_len, output_len, send_s), taken from the simulator's own generator
    # before it moved here: studies and fingerprints depend on these exact requests
    "sharegpt": (Workload("s", "sharegpt-like", 1000, seed=0), "d33730b8ca121189"),
    "gamma": (
        Workload("p", "sharegpt-like", 500, request_rate=20.0, burstiness=0.5, seed=3),
        "159385954423f93c",
    ),
    "sessions": (
        Workload(
            "t",
            "random",
            64,
            input_len=100,
            output_len=20,
            request_rate=8.0,
            prefix_len=32,
            prefix_groups=4,
            turns=3,
            seed=1,
        ),
        "92d805d0a572c178",
    ),
}


def digest(requests: RequestSet) -> str:
    sha = hashlib.sha256()
    for array in (requests.prompt_len, requests.output_len, requests.send_s):
        sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_request_lists_are_bit_identical_to_the_pinned_ones(name: str) -> None:
    workload, expected = PINNED[name]
    assert digest(make_requests(workload)) == expected


def test_shared_prefix_groups_share_their_prefix() -> None:
    w = Workload("w", "random", 6, input_len=20, output_len=2, prefix_len=8, prefix_groups=2)
    prompts = token_prompts(make_requests(w), 1000, w.seed)
    assert prompts[0].prompt_ids[:8] == prompts[2].prompt_ids[:8]
    assert prompts[0].prompt_ids[:8] != prompts[1].prompt_ids[:8]
    assert all(p.prompt_len == 28 for p in prompts)  # prefix + input_len, as the simulator


def test_prefix_ids_do_not_depend_on_how_many_requests_use_them() -> None:
    """A segment's ids depend on the seed and the segment alone, so a replica's share of a list
    sends the very prompts the full list does."""
    w = Workload("w", "random", 3, input_len=10, output_len=2, prefix_len=4, prefix_groups=5)
    requests = make_requests(w)
    share = requests.take(np.array([0, 2], dtype=np.int64), None)
    full = token_prompts(requests, 1000, w.seed)
    assert token_prompts(share, 1000, w.seed) == [full[0], full[2]]
    five = Workload("w", "random", 5, input_len=10, output_len=2, prefix_len=4, prefix_groups=5)
    bigger = token_prompts(make_requests(five), 1000, five.seed)
    assert [p.prompt_ids[:4] for p in full] == [p.prompt_ids[:4] for p in bigger[:3]]


def test_a_later_turn_starts_with_the_whole_previous_prompt() -> None:
    w = Workload(
        "w", "random", 6, input_len=20, output_len=5, prefix_len=8, prefix_groups=2, turns=3
    )
    requests = make_requests(w)
    prompts = token_prompts(requests, 1000, w.seed)
    assert requests.parent is not None and requests.chains is not None
    for child, parent in enumerate(requests.parent.tolist()):
        if parent >= 0:
            before = prompts[parent].prompt_ids
            assert prompts[child].prompt_ids[: len(before)] == before
            assert requests.chains.shared_tokens(child, parent) == len(before)
    # the answer stand-in and the new message are the turn's own
    assert prompts[1].prompt_ids[28:] != prompts[4].prompt_ids[28:]


def test_token_prompts_have_exactly_the_requested_lengths_and_ids_in_range() -> None:
    w = Workload("w", "sharegpt-like", 50, seed=2)
    requests = make_requests(w)
    prompts = token_prompts(requests, 5000, w.seed)
    assert [p.prompt_len for p in prompts] == requests.prompt_len.tolist()
    assert [len(p.prompt_ids) for p in prompts] == requests.prompt_len.tolist()
    assert [p.output_len for p in prompts] == requests.output_len.tolist()
    assert all(300 <= i < 5000 for p in prompts for i in p.prompt_ids)
    assert token_prompts(requests, 5000, w.seed) == prompts  # built on access, deterministic
    assert token_prompts(requests, 5000, w.seed + 1) != prompts


def test_too_small_a_vocabulary_is_a_dataset_error() -> None:
    w = Workload("w", "random", 2, input_len=4, output_len=2)
    with pytest.raises(DatasetError, match="vocab_size 100"):
        token_prompts(make_requests(w), 100, 0)


def test_random_dataset_without_lengths_names_the_workload() -> None:
    with pytest.raises(DatasetError, match="workload 'w': the random dataset needs input_len"):
        make_requests(Workload("w", "random", 2))


def test_the_simulator_plays_the_request_list_the_load_generator_sends() -> None:
    """One value, two consumers: the simulated trial's per-request lengths are the lengths of
    the prompts a real trial of the same workload sends."""
    w = Workload("w", "sharegpt-like", 40, seed=5, request_rate=10.0, burstiness=0.7)
    candidate = Candidate.make("vllm", "0.33.0", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", {})
    config = resolve(candidate, NodeGroup("h100", "H100-SXM-80GB", 8))
    assert isinstance(config, ServingConfig)
    records = simulate(config, w).records
    assert records is not None
    prompts = token_prompts(make_requests(w), 150_000, w.seed)
    assert records.prompt_len.tolist() == [p.prompt_len for p in prompts]
    assert records.output_len.tolist() == [p.output_len for p in prompts]


def test_sharegpt_file_is_read_and_filtered(tmp_path: Path) -> None:
    convs = [
        {
            "conversations": [
                {"from": "human", "value": "a b c d e f g h i j k l m n o p q"},
                {"from": "gpt", "value": v},
            ]
        }
        for v in ("one two three four five six seven eight nine ten eleven", "too short")
    ]
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(convs * 3))
    w = Workload("sg", "sharegpt", 3, path=str(path))
    requests = make_requests(w)
    assert requests.output_len.tolist() == [14, 14, 14]  # 4 bytes per token, rounded up
    assert requests.texts is not None and len(set(requests.texts)) == 1
    with pytest.raises(DatasetError, match="only 3 requests to replay"):
        make_requests(Workload("sg", "sharegpt", 4, path=str(path)))
    path.write_text("{}")
    with pytest.raises(DatasetError, match="expected a JSON list"):
        make_requests(w)


def test_the_load_generator_does_not_import_the_simulator() -> None:
    """Both take their requests from runners.workload; runners.bench never reaches into sim."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("bench", "workload"):
        for path in sorted((root / "runners" / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                offenders += [f"{path.name}: {n}" for n in names if n.startswith("runners.sim")]
    assert offenders == []

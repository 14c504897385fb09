"""Datasets for the load generator: what each request sends, with its expected lengths.

First stage of a real benchmark: a `Workload` (or a ShareGPT file) becomes a tuple of
`BenchRequest`s; `runners.bench.loadgen` then sends them. Fixed random lengths and the
simulator's ShareGPT-like lengths are sent as token-id prompts, so the prompt has exactly the
intended number of tokens on the completions endpoint; shared-prefix groups put the same
token-id prefix in front of every prompt of a group. Lengths come from the same seeded streams
as the simulator (`runners.sim.workload.make_requests`), so a simulated and a real trial of one
workload see the same requests. A ShareGPT-format JSON file (``[{"conversations": [{"from":
"human", "value": ...}, {"from": "gpt", "value": ...}]}]``) is read by path and filtered like
`vllm bench serve` (at least 4 tokens each side, prompt <= 1024, prompt + output <= 2048).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runners.errors import DatasetError
from runners.sim.workload import make_requests
from runners.types import Workload

TOKEN_ID_LOW = 300
"""Token ids below this are avoided in random prompts (special and byte tokens)."""


@dataclass(frozen=True)
class BenchRequest:
    """One request: a token-id prompt or a text prompt, and the lengths it should have."""

    prompt_len: int
    output_len: int
    prompt_ids: tuple[int, ...] = ()
    prompt_text: str = ""

    def prompt_for_completions(self) -> str | list[int]:
        return list(self.prompt_ids) if self.prompt_ids else self.prompt_text

    def prompt_for_chat(self) -> str:
        if self.prompt_text:
            return self.prompt_text
        return " ".join(f"w{token % 997}" for token in self.prompt_ids)


def _token_ids(rng: random.Random, count: int, vocab_size: int) -> tuple[int, ...]:
    return tuple(rng.randrange(TOKEN_ID_LOW, vocab_size) for _ in range(count))


def from_workload(workload: Workload, vocab_size: int) -> tuple[BenchRequest, ...]:
    """Token-id requests with the workload's lengths (random or ShareGPT-like) and prefixes."""
    if vocab_size <= TOKEN_ID_LOW:
        raise DatasetError(f"vocab_size {vocab_size} must exceed {TOKEN_ID_LOW}")
    requests = make_requests(workload)
    rng = random.Random(workload.seed)
    groups = max(0, workload.prefix_groups)
    prefixes = [_token_ids(rng, workload.prefix_len, vocab_size) for _ in range(groups)]
    out: list[BenchRequest] = []
    for index in range(requests.size):
        prompt_len = int(requests.prompt_len[index])
        prefix = prefixes[index % groups] if groups else ()
        suffix = _token_ids(rng, max(0, prompt_len - len(prefix)), vocab_size)
        ids = (prefix + suffix)[: max(prompt_len, len(prefix))]
        out.append(BenchRequest(len(ids), int(requests.output_len[index]), prompt_ids=ids))
    return tuple(out)


def send_times_s(workload: Workload) -> list[float]:
    """Earliest send time per request: the simulator's Poisson times, or gamma with burstiness."""
    if workload.burstiness == 1.0 or not np.isfinite(workload.request_rate):
        return [float(t) for t in make_requests(workload).send_s]
    rng = np.random.default_rng(workload.seed + 1)
    shape = workload.burstiness
    gaps = rng.gamma(shape, 1.0 / (workload.request_rate * shape), workload.num_prompts)
    gaps[0] = 0.0
    return [float(t) for t in np.cumsum(gaps)]


def load_sharegpt(
    path: Path,
    num_prompts: int,
    count_tokens: Callable[[str], int],
    seed: int = 0,
    fixed_output_len: int | None = None,
) -> tuple[BenchRequest, ...]:
    """Requests from a ShareGPT-format file: first human turn -> prompt, gpt reply -> length."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read a ShareGPT JSON file: {exc}") from exc
    if not isinstance(raw, list):
        raise DatasetError(f"{path}: expected a JSON list of conversations")
    pairs: list[tuple[str, str]] = []
    for entry in raw:
        turns = entry.get("conversations") if isinstance(entry, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        first, second = turns[0], turns[1]
        if isinstance(first, dict) and isinstance(second, dict):
            pairs.append((str(first.get("value", "")), str(second.get("value", ""))))
    random.Random(seed).shuffle(pairs)
    out: list[BenchRequest] = []
    for prompt, reply in pairs:
        if len(out) == num_prompts:
            break
        prompt_len = count_tokens(prompt)
        output_len = fixed_output_len or count_tokens(reply)
        if prompt_len < 4 or (fixed_output_len is None and output_len < 4):
            continue
        if prompt_len > 1024 or prompt_len + output_len > 2048:
            continue
        out.append(BenchRequest(prompt_len, output_len, prompt_text=prompt))
    if len(out) < num_prompts:
        raise DatasetError(
            f"{path}: only {len(out)} usable conversations, {num_prompts} requested"
        )
    return tuple(out)


def whitespace_tokens(text: str) -> int:
    """A tokenizer-free token count (words), for files when no tokenizer is given."""
    return len(text.split())

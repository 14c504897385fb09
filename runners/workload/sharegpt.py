"""Requests from a ShareGPT-format file, read and filtered like `vllm bench serve` does.

A file source of text prompts for the real load generator: a JSON list of conversations
(``[{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}]``); the
first human turn is the prompt and the reply's length the output length. Conversations are
shuffled with `seed`, then kept while at least 4 tokens each side, prompt <= 1024 and prompt +
output <= 2048 tokens (the filter of vLLM bench's ShareGPT loader).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from runners.errors import DatasetError
from runners.workload.lengths import (
    SHAREGPT_MAX_PROMPT_TOK,
    SHAREGPT_MAX_TOTAL_TOK,
    SHAREGPT_MIN_LEN_TOK,
)
from runners.workload.prompts import BenchRequest


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
        if prompt_len < SHAREGPT_MIN_LEN_TOK or (
            fixed_output_len is None and output_len < SHAREGPT_MIN_LEN_TOK
        ):
            continue
        if (
            prompt_len > SHAREGPT_MAX_PROMPT_TOK
            or prompt_len + output_len > SHAREGPT_MAX_TOTAL_TOK
        ):
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

"""What each request of a request list sends: `BenchRequest`s with token-id or text prompts.

Third stage, for the real load generator only (the simulator needs lengths, not content):
`token_prompts` turns a `RequestSet` into token-id prompts of exactly each request's length, so
the completions endpoint sees exactly the intended number of tokens; requests of one prefix
group start with the same token ids. Ids are drawn from a seeded stream, below the model's
vocabulary and above the special and byte tokens. ShareGPT files give text prompts instead
(`runners.workload.sharegpt`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from runners.errors import DatasetError
from runners.workload.requests import RequestSet

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


def token_prompts(requests: RequestSet, vocab_size: int, seed: int) -> tuple[BenchRequest, ...]:
    """Token-id prompts with the requests' lengths; a prefix group's requests share its prefix.

    The group prefixes are drawn first, then each request's own ids in request order, all from
    one stream seeded with `seed` (the workload's seed).
    """
    if vocab_size <= TOKEN_ID_LOW:
        raise DatasetError(f"vocab_size {vocab_size} must exceed {TOKEN_ID_LOW}")
    rng = random.Random(seed)
    prefixes = [
        _token_ids(rng, requests.prefix_len, vocab_size) for _ in range(requests.prefix_groups)
    ]
    out: list[BenchRequest] = []
    for index in range(requests.size):
        prompt_len = int(requests.prompt_len[index])
        group = -1 if requests.prefix_group is None else int(requests.prefix_group[index])
        prefix = prefixes[group] if group >= 0 else ()
        suffix = _token_ids(rng, max(0, prompt_len - len(prefix)), vocab_size)
        ids = (prefix + suffix)[: max(prompt_len, len(prefix))]
        out.append(BenchRequest(len(ids), int(requests.output_len[index]), prompt_ids=ids))
    return tuple(out)


def _token_ids(rng: random.Random, count: int, vocab_size: int) -> tuple[int, ...]:
    return tuple(rng.randrange(TOKEN_ID_LOW, vocab_size) for _ in range(count))

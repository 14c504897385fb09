"""What each request of a request list sends: `BenchRequest`s with token-id or text prompts.

Last stage, for the real load generator only (the simulator needs lengths, not content).
`bench_requests` gives the real prompts of a text source as they are, and otherwise token-id
prompts of exactly each request's length (`TokenPrompts`), so the completions endpoint sees
exactly the intended number of tokens. Every segment of the list's `PrefixChains` has the same
token ids wherever it appears, so requests share exactly the prefixes the simulator shares; the
rest of each prompt is the request's own. Ids are drawn from streams seeded by (workload seed,
segment) and (workload seed, request id), below the model's vocabulary and above the special
and byte tokens, so a replica's share of a list sends the very same prompts. Prompts are built
when the load generator asks for them (a long trace would not fit in memory as Python ints).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from runners.errors import DatasetError
from runners.workload.requests import RequestSet
from runners.workload.tokens import Message

TOKEN_ID_LOW = 300
"""Token ids below this are avoided in random prompts (special and byte tokens)."""
SEGMENT_CACHE = 4096


@dataclass(frozen=True)
class BenchRequest:
    """One request: a token-id prompt, a text prompt or chat messages, and its lengths."""

    prompt_len: int
    output_len: int
    prompt_ids: tuple[int, ...] = ()
    prompt_text: str = ""
    messages: tuple[Message, ...] = ()

    def prompt_for_completions(self) -> str | list[int]:
        if self.prompt_ids:
            return list(self.prompt_ids)
        if self.messages:
            return "\n".join(f"{role}: {content}" for role, content in self.messages)
        return self.prompt_text

    def chat_messages(self) -> list[dict[str, str]]:
        if self.messages:
            return [{"role": role, "content": content} for role, content in self.messages]
        return [{"role": "user", "content": self.prompt_for_chat()}]

    def prompt_for_chat(self) -> str:
        if self.prompt_text:
            return self.prompt_text
        return " ".join(f"w{token % 997}" for token in self.prompt_ids)


def bench_requests(requests: RequestSet, vocab_size: int, seed: int) -> Sequence[BenchRequest]:
    """The prompts of a request list: its texts when it has them, else token ids."""
    if requests.texts is None:
        return TokenPrompts(requests, vocab_size, seed)
    out: list[BenchRequest] = []
    for i, text in enumerate(requests.texts):
        prompt_len, output_len = int(requests.prompt_len[i]), int(requests.output_len[i])
        if isinstance(text, str):
            out.append(BenchRequest(prompt_len, output_len, prompt_text=text))
        else:
            out.append(BenchRequest(prompt_len, output_len, messages=text))
    return tuple(out)


class TokenPrompts(Sequence[BenchRequest]):
    """Token-id prompts of a request list, built on access; equal segments, equal ids."""

    def __init__(self, requests: RequestSet, vocab_size: int, seed: int) -> None:
        if vocab_size <= TOKEN_ID_LOW:
            raise DatasetError(f"vocab_size {vocab_size} must exceed {TOKEN_ID_LOW}")
        self.requests = requests
        self.vocab_size = vocab_size
        self.seed = seed
        self._segments: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.requests.size

    @overload
    def __getitem__(self, index: int) -> BenchRequest: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[BenchRequest, ...]: ...

    def __getitem__(self, index: int | slice) -> BenchRequest | tuple[BenchRequest, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        requests = self.requests
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        prompt_len = int(requests.prompt_len[index])
        parts: list[np.ndarray] = []
        covered = 0
        chains = requests.chains
        if chains is not None:
            for segment in chains.chain(index).tolist():
                length = int(chains.end[segment] - chains.start[segment])
                parts.append(self._segment(segment, length))
            covered = int(chains.end[chains.chain(index)[-1]]) if parts else 0
        own = self._draw((self.seed, 1, int(requests.request_id[index])), prompt_len - covered)
        ids = np.concatenate([*parts, own])[:prompt_len] if parts else own
        return BenchRequest(
            prompt_len, int(requests.output_len[index]), prompt_ids=tuple(ids.tolist())
        )

    def _segment(self, segment: int, length: int) -> np.ndarray:
        found = self._segments.get(segment)
        if found is None:
            if len(self._segments) >= SEGMENT_CACHE:
                self._segments.clear()
            found = self._segments[segment] = self._draw((self.seed, 0, segment), length)
        return found

    def _draw(self, key: tuple[int, int, int], count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.Generator(np.random.PCG64(list(key)))
        ids: np.ndarray = rng.integers(TOKEN_ID_LOW, self.vocab_size, size=count)
        return ids

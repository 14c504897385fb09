"""What the engine emulator learns from a request body: its prompt's length, shared prefixes and a
record of it.

Place in the data flow: `runners.sim.serve` hands every received generation request to
`ReceivedRequests.add`, then re-simulates the requests so far with their `chains`. Prompt
lengths are counted as `runners.workload` counts them (token ids one by one; text and chat
messages with the documented estimate), so an emulated trial of a workload sees the lengths a
simulated one plays. Shared prefixes are recognised in token-id prompts: the prompt is cut into
blocks of `BLOCK_TOKENS` tokens, each named by its content and everything before it (as the
engines' prefix caches hash blocks), which gives `PrefixChains` the simulator's prefix cache
plays. `log` is the emulator's record of what it received (served at /emulator/requests):
arrival and finish on the emulated clock, lengths, and a digest of the prompt, so a test can
compare the requests a real load generator sent with the request list.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from runners.workload import ChainBuilder, PrefixChains
from runners.workload.tokens import estimate_message_tokens, estimate_tokens

BLOCK_TOKENS = 16


@dataclass(frozen=True)
class Received:
    """One generation request as the emulator saw it."""

    prompt_len: int
    output_len: int
    arrival_s: float
    digest: str


def prompt_length(body: dict[str, object]) -> int:
    """Prompt tokens of a completions or chat body (ids counted, text estimated)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return max(1, len(prompt))
    if isinstance(prompt, str):
        return estimate_tokens(prompt)
    messages = body.get("messages")
    chat: list[tuple[str, str]] = []
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                chat.append((str(message.get("role", "")), str(message.get("content", ""))))
    return estimate_message_tokens(chat)


def prompt_digest(body: dict[str, object]) -> str:
    """A short digest of the prompt (token ids, text or messages) as sent."""
    prompt = body.get("prompt", body.get("messages"))
    text = json.dumps(prompt, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ReceivedRequests:
    """Every request received so far, with the prefix chains of their token-id prompts."""

    def __init__(self) -> None:
        self.log: list[Received] = []
        self.done_s: list[float | None] = []
        self._builder = ChainBuilder()
        self._chains: list[list[int]] = []

    def add(self, body: dict[str, object], output_len: int, arrival_s: float) -> Received:
        received = Received(prompt_length(body), output_len, arrival_s, prompt_digest(body))
        self.log.append(received)
        self.done_s.append(None)
        self._chains.append(self._blocks(body.get("prompt")))
        return received

    def _blocks(self, prompt: object) -> list[int]:
        if not isinstance(prompt, list) or len(prompt) < BLOCK_TOKENS:
            return []
        full = len(prompt) // BLOCK_TOKENS
        keys = [
            hash(tuple(prompt[k * BLOCK_TOKENS : (k + 1) * BLOCK_TOKENS])) for k in range(full)
        ]
        return self._builder.extend_all([], keys, [BLOCK_TOKENS] * full)

    def chains(self) -> PrefixChains:
        return self._builder.finish(self._chains)

    def records(self) -> list[dict[str, object]]:
        """The log as JSON-ready rows, in arrival order."""
        return [
            {
                "prompt_len": r.prompt_len,
                "output_len": r.output_len,
                "arrival_s": r.arrival_s,
                "done_s": done,
                "digest": r.digest,
            }
            for r, done in zip(self.log, self.done_s, strict=True)
        ]

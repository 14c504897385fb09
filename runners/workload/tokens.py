"""Counting the tokens of real prompts: the model's tokenizer when it is on this machine, else an
estimate.

Where it sits: a file source of text prompts (ShareGPT, JSONL or CSV prompts, chat messages)
needs each prompt's token count, because the simulator plays lengths. `TokenCounter` counts with
a Hugging Face tokenizer loaded only from local files (a model folder or the local Hugging Face
cache; the network is never used); without one it uses the documented estimate: one token per
4 bytes of UTF-8 text (the usual rule of thumb for English with 100k-token BPE vocabularies),
at least 1, plus `MESSAGE_OVERHEAD_TOKENS` per chat message for the role and separators of a
chat template. The engine emulator counts received text with the same estimate, so a simulated
and an emulated trial of one text workload see the same lengths. `local_tokenizer` decides,
once, on the machine that reads the space file, which tokenizer a workload uses, so every node
counts alike (a node that lacks it fails loudly instead of estimating).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from runners.errors import DatasetError

BYTES_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")

Message = tuple[str, str]
"""One chat message: (role, content)."""


def estimate_tokens(text: str) -> int:
    """The tokenizer-free estimate: one token per 4 bytes of UTF-8, at least 1."""
    return max(1, math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN))


def estimate_message_tokens(messages: Sequence[Message]) -> int:
    """Estimated tokens of a chat: each message's content plus the template's overhead."""
    return max(1, sum(estimate_tokens(c) + MESSAGE_OVERHEAD_TOKENS for _, c in messages))


class _HfTokenizer(Protocol):
    def __call__(self, text: list[str], add_special_tokens: bool = ...) -> object: ...

    def apply_chat_template(
        self, conversation: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> object: ...


class TokenCounter:
    """Counts prompt tokens with a local tokenizer (`name`) or the estimate (`name` empty)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._tokenizer = _load(name) if name else None

    @property
    def description(self) -> str:
        return f"tokenizer {self.name}" if self.name else "estimate (4 bytes per token)"

    def count_texts(self, texts: Sequence[str]) -> list[int]:
        if self._tokenizer is None:
            return [estimate_tokens(t) for t in texts]
        encoded = self._tokenizer(list(texts), add_special_tokens=False)
        ids = encoded["input_ids"] if isinstance(encoded, dict) else encoded.input_ids  # type: ignore[attr-defined]
        return [max(1, len(row)) for row in ids]

    def count_messages(self, messages: Sequence[Message]) -> int:
        if self._tokenizer is None or not _has_chat_template(self._tokenizer):
            if self._tokenizer is None:
                return estimate_message_tokens(messages)
            contents = self.count_texts([c for _, c in messages])
            return sum(n + MESSAGE_OVERHEAD_TOKENS for n in contents)
        chat = [{"role": r, "content": c} for r, c in messages]
        ids = self._tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
        if isinstance(ids, dict):
            ids = ids["input_ids"]
        return max(1, len(ids))  # type: ignore[arg-type]


def _has_chat_template(tokenizer: object) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


@lru_cache(maxsize=4)
def _load(name: str) -> _HfTokenizer:
    """A Hugging Face tokenizer from local files only; DatasetError when it is not here."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise DatasetError(
            f"tokenizer {name!r}: transformers is not installed on this machine ({exc}); "
            "install it or set the workload's tokenizer to 'estimate'"
        ) from None
    try:
        loaded: object = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError and its own errors
        raise DatasetError(
            f"tokenizer {name!r} cannot be loaded from local files on this machine "
            f"({type(exc).__name__}: {str(exc)[:200]}); copy the model folder or its Hugging "
            "Face cache here, or set the workload's tokenizer to 'estimate'"
        ) from None
    tokenizer: _HfTokenizer = loaded  # type: ignore[assignment]
    return tokenizer


@lru_cache(maxsize=16)
def local_tokenizer(checkpoint: str) -> str:
    """`checkpoint` (a model folder or Hugging Face repo id) when its tokenizer files are on
    this machine, else "" (the estimate). Looks at files only; imports nothing heavy."""
    folder = Path(checkpoint).expanduser()
    if folder.is_dir():
        found = any((folder / name).is_file() for name in TOKENIZER_FILES)
        return str(folder.resolve()) if found else ""
    if checkpoint.count("/") != 1 or checkpoint.startswith(("/", ".", "~")):
        return ""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return ""
    for name in TOKENIZER_FILES:
        try:
            cached = try_to_load_from_cache(checkpoint, name)
        except Exception:  # an invalid repo id is simply not cached
            return ""
        if isinstance(cached, str):
            return checkpoint
    return ""

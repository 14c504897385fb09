"""ShareGPT JSON files, read and filtered the way `vllm bench serve --dataset-name sharegpt` does.

Where it sits: a file format of `runners.workload.sources`, one entry point (`read_sharegpt`)
that reads a file into `Rows` and raises nothing but `DatasetError`. The file is a JSON list of
conversations (``[{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value":
...}]}]``); the first turn is the prompt and the reply's token count the output length.
Conversations are shuffled with the workload's seed, then kept while the prompt has at least 4
tokens (the reply too, unless `output_len` replaces it), the prompt at most 1024 and prompt plus
output at most 2048 (vLLM bench's filter), until `num_prompts` are in. Prompts are sent as text;
their token counts come from the workload's `TokenCounter`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from runners.types import Workload
from runners.workload.lengths import (
    SHAREGPT_MAX_PROMPT_TOK,
    SHAREGPT_MAX_TOTAL_TOK,
    SHAREGPT_MIN_LEN_TOK,
)
from runners.workload.reader import problem, read_document
from runners.workload.rows import Rows
from runners.workload.tokens import TokenCounter

COUNT_BATCH = 256


def read_sharegpt(path: Path, workload: Workload, counter: TokenCounter) -> Rows:
    """The rows `workload` replays from a ShareGPT file (row "line" = entry number from 1)."""
    try:
        raw = json.loads(read_document(path))
    except json.JSONDecodeError as exc:
        raise problem(path, exc.lineno, f"not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise problem(path, None, "not valid JSON (nested too deeply)") from None
    if not isinstance(raw, list):
        raise problem(path, None, "expected a JSON list of conversations")
    pairs: list[tuple[int, str, str]] = []
    for number, entry in enumerate(raw, start=1):
        turns = entry.get("conversations") if isinstance(entry, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        first, second = turns[0], turns[1]
        if isinstance(first, dict) and isinstance(second, dict):
            prompt, reply = first.get("value", ""), second.get("value", "")
            if isinstance(prompt, str) and isinstance(reply, str) and prompt:
                pairs.append((number, prompt, reply))
    random.Random(workload.seed).shuffle(pairs)
    fixed = workload.output_len
    rows = Rows(path, texts=[])
    assert rows.texts is not None
    for begin in range(0, len(pairs), COUNT_BATCH):
        batch = pairs[begin : begin + COUNT_BATCH]
        prompts = counter.count_texts([p for _, p, _ in batch])
        replies = counter.count_texts([r or " " for _, _, r in batch]) if fixed is None else []
        for k, (number, prompt, _) in enumerate(batch):
            rows.rows_seen += 1
            prompt_len = prompts[k]
            output_len = fixed if fixed is not None else replies[k]
            if prompt_len < SHAREGPT_MIN_LEN_TOK or (
                fixed is None and output_len < SHAREGPT_MIN_LEN_TOK
            ):
                continue
            if (
                prompt_len > SHAREGPT_MAX_PROMPT_TOK
                or prompt_len + output_len > SHAREGPT_MAX_TOTAL_TOK
            ):
                continue
            rows.line.append(number)
            rows.prompt_len.append(prompt_len)
            rows.output_len.append(output_len)
            rows.texts.append(prompt)
            if rows.size == workload.num_prompts:
                return rows
    if rows.size == 0 and not pairs:
        raise problem(path, None, "no conversation with a prompt and a reply")
    return rows

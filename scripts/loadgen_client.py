"""One run of our load generator, as scripts/bench_loadgen.py runs it (``--client-run``).

Where it sits: bench_loadgen.py starts each client in its own process pinned to one core;
ours is this module's `ours_main` (`runners.bench.loadgen`'s `run_benchmark`, as a trial runs
it), which writes a result document in `vllm bench serve`'s JSON format so both tools' results
are read alike.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from pathlib import Path

import numpy as np

from runners.bench.loadgen import LoadConfig, make_client, run_benchmark, send_one
from runners.bench.metrics import summarize
from runners.bench.results import save_result, to_vllm_json
from runners.workload import BenchRequest


def constant_times(rate: float, count: int) -> list[float]:
    """Request i is due at i / rate (what `vllm bench serve --burstiness inf` does)."""
    return [index / rate for index in range(count)]


def text_requests(
    model_dir: Path,
    rows: list[list[int]],
    input_len: int,
    output_len: int,
    rng: np.random.Generator,
) -> list[BenchRequest]:
    """Text prompts that the model's tokenizer turns back into exactly `input_len` tokens.

    As `vllm bench serve --dataset-name random` sends them: the engine then tokenizes every
    prompt itself, which costs it time before the first token (token-id prompts skip that, so
    comparing the two would compare different workloads).
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    vocab = len(tokenizer)
    out: list[BenchRequest] = []
    for ids in rows:
        text = str(tokenizer.decode(ids))
        for _ in range(10):
            again = tokenizer.encode(text, add_special_tokens=False)
            if len(again) == input_len:
                break
            if len(again) > input_len:
                again = again[:input_len]
            else:
                extra = rng.integers(300, vocab, input_len - len(again))
                again = again + [int(t) for t in extra]
            text = str(tokenizer.decode(again))
        out.append(BenchRequest(input_len, output_len, prompt_text=text))
    return out


def ours_main(
    base_url: str,
    rate: float,
    count: int,
    input_len: int,
    output_len: int,
    out: Path,
    seed: int,
    model: str,
    vocab: int,
    max_concurrency: int | None,
    go_file: str = "",
) -> None:
    """One run of our load generator; writes the vllm-format JSON to `out`.

    With `go_file`, it warms up, then waits for that file to exist before its measured run
    starts (to start together with another client)."""
    rng = np.random.default_rng(seed)
    rows = [[int(t) for t in ids] for ids in rng.integers(300, vocab, size=(count, input_len))]
    if (Path(model) / "tokenizer.json").exists():
        requests = text_requests(Path(model), rows, input_len, output_len, rng)
    else:
        requests = [BenchRequest(input_len, output_len, prompt_ids=tuple(r)) for r in rows]
    times = None if math.isinf(rate) else constant_times(rate, count)
    config = LoadConfig(
        base_url=base_url,
        model=model,
        num_warmups=0 if go_file else 1,
        max_concurrency=max_concurrency,
    )

    async def main() -> None:
        async with make_client() as client:
            if go_file:
                await send_one(client, config, requests[0], time.perf_counter())
                while not os.path.exists(go_file):
                    await asyncio.sleep(0.0005)
            result = await run_benchmark(client, config, requests, times, rate)
        metrics = summarize(result.records(), num_gpus=1)
        save_result(out, to_vllm_json(result, metrics, model))

    asyncio.run(main())  # the default event loop, as LocalRunner runs it

"""Write a Mooncake-format and an Azure-format LLM-serving trace, deterministic from a seed.

Where it sits: test and benchmark data for the workload file formats (`runners.workload.traces`),
in the public formats real traces come in, generated here because nothing can be downloaded.
Sizes default to one hour of a busy service, about the size of the published traces:

- ``mooncake.jsonl``: 23,600 requests, one JSON object per line with ``timestamp`` (ms),
  ``input_length``, ``output_length`` and ``hash_ids`` (blocks of 512 prompt tokens). Prompts
  are long (lognormal, median about 5,000 tokens, capped at 128k) and share prefixes as a
  chat-and-documents service does: each request starts with one of a few hundred contexts
  chosen by a Zipf law (a system prompt, a document), and about a third continue an earlier
  request (the same conversation: its whole prompt, then new blocks). Outputs are short
  (median about 130 tokens). Hash ids are numbered in order of first use.
- ``azure.csv``: 20,000 requests with the header ``TIMESTAMP,ContextTokens,GeneratedTokens``
  and timestamps like ``2023-11-16 18:15:46.6805900``; conversation-like lengths (context
  median about 1,000 tokens, output about 230), or code-like with ``--azure-shape code``
  (context about 2,000, output about 25).

Arrivals are a Poisson process whose rate swings by +-30% over the hour. Run:
``python scripts/make_traces.py --out traces [--seed 0] [--mooncake-requests N]
[--azure-requests N] [--duration-s S]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

import numpy as np

BLOCK = 512
MAX_PROMPT = 131_072
AZURE_START = datetime.datetime(2023, 11, 16, 18, 0, 0)
AZURE_SHAPES = {  # (context median, sigma, output median, sigma)
    "conversation": (1000.0, 0.9, 230.0, 0.8),
    "code": (2000.0, 0.8, 25.0, 1.0),
}


def arrival_times(n: int, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """`n` sorted Poisson arrivals over `duration_s`, the rate swinging +-30% once."""
    grid = np.linspace(0.0, duration_s, 4097)
    rate = 1.0 + 0.3 * np.sin(2.0 * math.pi * grid / duration_s)
    cumulative = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * np.diff(grid))])
    uniform = np.sort(rng.uniform(0.0, cumulative[-1], n))
    times: np.ndarray = np.interp(uniform, cumulative, grid)
    return times


def lognormal_ints(
    n: int, median: float, sigma: float, low: int, high: int, rng: np.random.Generator
) -> np.ndarray:
    values = np.rint(median * np.exp(sigma * rng.standard_normal(n)))
    out: np.ndarray = np.clip(values, low, high).astype(np.int64)
    return out


def mooncake_rows(n: int, duration_s: float, seed: int) -> list[dict[str, object]]:
    """Rows of a Mooncake-format trace (see the module docstring)."""
    rng = np.random.default_rng([seed, 1])
    times_ms = np.rint(arrival_times(n, duration_s, rng) * 1000.0).astype(np.int64)
    prompt = lognormal_ints(n, 5000.0, 0.9, 64, MAX_PROMPT, rng)
    output = lognormal_ints(n, 130.0, 0.9, 1, 4096, rng)
    contexts = 400
    context_blocks = lognormal_ints(contexts, 3.0, 0.8, 1, 64, rng)
    popularity = 1.0 / np.arange(1, contexts + 1) ** 1.1
    choice = rng.choice(contexts, size=n, p=popularity / popularity.sum())
    follow = rng.random(n) < 0.35
    next_id = 0
    context_ids: dict[int, list[int]] = {}
    chains: list[list[int]] = []
    rows: list[dict[str, object]] = []
    for i in range(n):
        blocks = -(-int(prompt[i]) // BLOCK)
        if follow[i] and i > 0:
            earlier = int(rng.integers(max(0, i - 200), i))  # a recent conversation
            base = chains[earlier]
            if int(rows[earlier]["input_length"]) % BLOCK:  # type: ignore[call-overload]
                base = base[:-1]  # its partial last block is completed now: a new block
        else:
            c = int(choice[i])
            if c not in context_ids:
                size = int(context_blocks[c])
                context_ids[c] = list(range(next_id, next_id + size))
                next_id += size
            base = context_ids[c]
        base = base[: blocks - 1] if len(base) >= blocks else base
        own = blocks - len(base)
        chain = base + list(range(next_id, next_id + own))
        next_id += own
        chains.append(chain)
        length = max(int(prompt[i]), (len(chain) - 1) * BLOCK + 1)
        rows.append(
            {
                "timestamp": int(times_ms[i]),
                "input_length": length,
                "output_length": int(output[i]),
                "hash_ids": chain,
            }
        )
    return rows


def azure_rows(n: int, duration_s: float, seed: int, shape: str) -> list[tuple[str, int, int]]:
    """(TIMESTAMP, ContextTokens, GeneratedTokens) rows of an Azure-format trace."""
    rng = np.random.default_rng([seed, 2])
    times = arrival_times(n, duration_s, rng)
    context_median, context_sigma, output_median, output_sigma = AZURE_SHAPES[shape]
    context = lognormal_ints(n, context_median, context_sigma, 1, 32_000, rng)
    generated = lognormal_ints(n, output_median, output_sigma, 1, 4_000, rng)
    rows: list[tuple[str, int, int]] = []
    for t, c, g in zip(times.tolist(), context.tolist(), generated.tolist(), strict=True):
        stamp = AZURE_START + datetime.timedelta(microseconds=round(t * 1e6))
        rows.append((stamp.strftime("%Y-%m-%d %H:%M:%S.%f") + "0", c, g))
    return rows


def write_mooncake(path: Path, n: int, duration_s: float, seed: int) -> Path:
    lines = (
        json.dumps(row, separators=(", ", ": ")) for row in mooncake_rows(n, duration_s, seed)
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_azure(path: Path, n: int, duration_s: float, seed: int, shape: str) -> Path:
    rows = azure_rows(n, duration_s, seed, shape)
    text = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
        f"{t},{c},{g}\n" for t, c, g in rows
    )
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("traces"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration-s", type=float, default=3600.0)
    parser.add_argument("--mooncake-requests", type=int, default=23_600)
    parser.add_argument("--azure-requests", type=int, default=20_000)
    parser.add_argument("--azure-shape", choices=sorted(AZURE_SHAPES), default="conversation")
    args = parser.parse_args(argv)
    if min(args.mooncake_requests, args.azure_requests) < 1 or args.duration_s <= 0:
        parser.error("request counts must be at least 1 and the duration above 0")
    args.out.mkdir(parents=True, exist_ok=True)
    mooncake = write_mooncake(
        args.out / "mooncake.jsonl", args.mooncake_requests, args.duration_s, args.seed
    )
    azure = write_azure(
        args.out / "azure.csv", args.azure_requests, args.duration_s, args.seed, args.azure_shape
    )
    for path, n in ((mooncake, args.mooncake_requests), (azure, args.azure_requests)):
        print(f"wrote {path} ({n:,} requests over {args.duration_s:,.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

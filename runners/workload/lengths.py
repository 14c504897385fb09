"""Request lengths of the synthetic data sets: fixed (``random``) and ShareGPT-like.

First stage of `make_requests`. The ShareGPT-like lengths are lognormal (prompt, output) pairs
filtered like vLLM bench's ShareGPT loader; no data file is needed, so the simulator and the
real load generator draw the very same lengths from the workload's seed.
"""

from __future__ import annotations

import numpy as np

from runners.workload.arrays import IntArray

# Lognormal ShareGPT-like lengths. The sigmas are those of the ShareGPT conversations; the mus
# were chosen (numerically, offline) so that the means after the filter below are ~217 input
# and ~201 output tokens, as in the GPUStack runs (217,393 in / ~201,400 out per 1,000 prompts).
SHAREGPT_SIGMA_IN = 1.1
SHAREGPT_SIGMA_OUT = 1.0
SHAREGPT_MU_IN = 5.05
SHAREGPT_MU_OUT = 4.85
# vLLM bench's `is_valid_sequence` filter: at least 4 tokens each side, prompt <= 1024 tokens,
# prompt + output <= 2048 tokens.
SHAREGPT_MIN_LEN_TOK = 4
SHAREGPT_MAX_PROMPT_TOK = 1024
SHAREGPT_MAX_TOTAL_TOK = 2048


def sharegpt_like_lengths(n: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """Lognormal (prompt, output) pairs filtered like vLLM bench's ShareGPT loader."""
    prompts: list[IntArray] = []
    outputs: list[IntArray] = []
    have = 0
    while have < n:
        batch = max(64, 2 * (n - have))
        p = _lognormal(SHAREGPT_MU_IN, SHAREGPT_SIGMA_IN, batch, rng)
        o = _lognormal(SHAREGPT_MU_OUT, SHAREGPT_SIGMA_OUT, batch, rng)
        valid = (
            (p >= SHAREGPT_MIN_LEN_TOK)
            & (o >= SHAREGPT_MIN_LEN_TOK)
            & (p <= SHAREGPT_MAX_PROMPT_TOK)
            & (p + o <= SHAREGPT_MAX_TOTAL_TOK)
        )
        prompts.append(p[valid])
        outputs.append(o[valid])
        have += int(valid.sum())
    return np.concatenate(prompts)[:n], np.concatenate(outputs)[:n]


def fixed_lengths(n: int, input_len: int, output_len: int) -> tuple[IntArray, IntArray]:
    """`n` requests of exactly `input_len` prompt and `output_len` output tokens."""
    return np.full(n, input_len, dtype=np.int64), np.full(n, output_len, dtype=np.int64)


def _lognormal(mu: float, sigma: float, n: int, rng: np.random.Generator) -> IntArray:
    values = np.rint(np.exp(mu + sigma * rng.standard_normal(n)))
    lengths: IntArray = np.maximum(1, values).astype(np.int64)
    return lengths

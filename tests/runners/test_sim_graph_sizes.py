"""The simulated step prices a CUDA-graph replay at the batch size vLLM captured for it:
1, 2, 4, then multiples of 8; with `--performance-mode interactivity` every size up to
min(largest capture, 32) as well, and the same grid of 8 above it (so interactivity buys
nothing for large batches)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runners.sim.perf import StepModel, graph_pad
from runners.sim.reference import dense_config


def test_capture_sizes() -> None:
    assert [graph_pad(n) for n in (1, 2, 3, 5, 8, 17, 33)] == [1, 2, 4, 8, 8, 24, 40]
    exact = 32
    assert [graph_pad(n, exact) for n in (1, 3, 17, 32, 33, 41)] == [1, 3, 17, 32, 40, 48]


def models(graph_max: int = 256) -> tuple[StepModel, StepModel]:
    base = dense_config("vllm", cuda_graph_max_batch=graph_max)
    interactive = dataclasses.replace(base, performance_mode="interactivity")
    return StepModel(base, 16384), StepModel(interactive, 16384)


@pytest.mark.parametrize("n", [33, 40, 100, 256])
def test_interactivity_prices_large_batches_like_balanced(n: int) -> None:
    balanced, interactive = models()
    assert interactive.decode_step_s(n, 1000.0 * n) == balanced.decode_step_s(n, 1000.0 * n)


@pytest.mark.parametrize("n", [3, 17, 31])
def test_interactivity_saves_the_padding_of_small_batches(n: int) -> None:
    balanced, interactive = models()
    assert interactive.decode_step_s(n, 1000.0 * n) < balanced.decode_step_s(n, 1000.0 * n)


def test_exact_sizes_stop_at_the_largest_capture() -> None:
    """With the largest capture at 16, 17 sequences are past it (no full graph either way)."""
    balanced, interactive = models(graph_max=16)
    assert interactive.graph_exact == 16
    for n in (9, 13):
        assert interactive.decode_step_s(n, 1e3 * n) < balanced.decode_step_s(n, 1e3 * n)


def test_the_vectorized_steps_pad_alike() -> None:
    _, interactive = models()
    n = np.array([3, 17, 33, 100], dtype=np.int64)
    ctx = 1000.0 * n
    vector = interactive.decode_steps_s(n, ctx)
    scalar = [interactive.decode_step_s(int(k), float(c)) for k, c in zip(n, ctx, strict=True)]
    np.testing.assert_allclose(vector, scalar, rtol=1e-12)

"""Low-load TTFT: a lone request's time to first token is the sum of the engine's real terms
(front end, pipeline hop, prefill step(s), output), and the event simulation agrees with it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runners.catalog import get_gpu, get_model
from runners.sim import simulate
from runners.sim.calibration import FITTED
from runners.sim.lowload import idle_ttft
from runners.sim.params import FRONTEND_C_IN_PER_TOK_S, fitted_calibration
from runners.sim.reference import reference_config
from runners.types import ServingConfig, Workload


def ttfts(config: ServingConfig, workload: Workload) -> np.ndarray:
    records = simulate(config, workload).records
    assert records is not None
    return np.asarray(records.ttft_s)


@pytest.mark.parametrize("prompt", [128, 2000, 20000])
def test_a_lone_request_takes_exactly_the_idle_terms(prompt: int) -> None:
    """Concurrency 1: every request finds the engine idle (20000 tokens: chunked prefill)."""
    config = reference_config()
    workload = Workload("w", "random", 3, input_len=prompt, output_len=4, max_concurrency=1)
    expected = idle_ttft(config, prompt).total_s
    assert ttfts(config, workload) == pytest.approx(np.full(3, expected), rel=1e-9)


def test_requests_at_a_low_rate_find_the_engine_idle() -> None:
    config = reference_config()
    workload = Workload("w", "random", 6, input_len=512, output_len=4, request_rate=0.5)
    expected = idle_ttft(config, 512).total_s
    assert ttfts(config, workload) == pytest.approx(np.full(6, expected), rel=1e-9)


def test_closed_loop_ttft_never_beats_an_idle_engine() -> None:
    """At concurrency 8 a request may wait for the step in progress and share its prefill."""
    config = reference_config()
    idle = idle_ttft(config, 1000).total_s
    workload = Workload("w", "random", 40, input_len=1000, output_len=64, max_concurrency=8)
    assert ttfts(config, workload).min() >= idle * (1 - 1e-9)
    assert ttfts(config, workload).mean() > idle


def test_the_host_terms_scale_with_the_devices_host() -> None:
    cpu = dataclasses.replace(
        reference_config(),
        gpu=get_gpu("CPU-2core-AVX512"),
        model=get_model("tiny-qwen3-moe"),
        tensor_parallel=1,
    )
    calib = fitted_calibration()
    base = calib.efficiency(cpu.gpu).host_scale
    slower = calib.updated({"gpu.CPU-2core-AVX512.host_scale": 2.0 * base})
    one, two = idle_ttft(cpu, 256, calib), idle_ttft(cpu, 256, slower)
    per_token = FRONTEND_C_IN_PER_TOK_S * 256  # tokenization: a fixed prior, not scaled
    assert two.ingest_s - per_token == pytest.approx(2.0 * (one.ingest_s - per_token))
    assert two.pipeline_s == pytest.approx(2.0 * one.pipeline_s)
    assert two.output_s == pytest.approx(2.0 * one.output_s)


def test_the_pipeline_latency_is_not_fitted_on_all_at_once_runs() -> None:
    """All-at-once runs cannot see it; a burst-fitted value made lone requests far too slow."""
    assert not [key for key in FITTED if key.endswith(".latency_s")]

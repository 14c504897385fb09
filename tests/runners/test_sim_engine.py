"""Behaviour of the simulated engine end to end: determinism, conservation, physical sanity."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from runners.bench.records import RequestRecords
from runners.sim import SimResult, simulate
from runners.sim.reference import reference_config
from runners.types import ServingConfig, Workload
from runners.workload import make_requests

SHAREGPT = Workload(name="sharegpt", dataset="sharegpt-like", num_prompts=300, seed=3)


def config(**overrides: object) -> ServingConfig:
    """vLLM 0.33 defaults for Qwen3-235B BF16 TP8 on 8xH100, with `overrides` applied."""
    return dataclasses.replace(reference_config(), **overrides)  # type: ignore[arg-type]


def records(result: SimResult) -> RequestRecords:
    assert result.crash is None, result.crash
    assert result.records is not None
    return result.records


def p99_tpot_s(rec: RequestRecords) -> float:
    ok = rec.success & (rec.output_len > 1)
    tpot = (rec.e2el_s[ok] - rec.ttft_s[ok]) / (rec.output_len[ok] - 1)
    return float(np.percentile(tpot, 99))


def output_tok_s(rec: RequestRecords) -> float:
    return float(rec.output_len[rec.success].sum() / rec.duration_s)


def assert_identical(a: RequestRecords, b: RequestRecords) -> None:
    for name in ("prompt_len", "output_len", "success", "start_s", "ttft_s", "e2el_s", "itl_s"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.itl_gaps(), b.itl_gaps())
    assert a.duration_s == b.duration_s


def test_same_seed_is_bit_identical() -> None:
    a = simulate(config(), SHAREGPT, seed=11)
    b = simulate(config(), SHAREGPT, seed=11)
    assert_identical(records(a), records(b))
    assert (a.steps, a.preemptions, a.max_running) == (b.steps, b.preemptions, b.max_running)


def test_sim_seed_only_matters_near_a_crash_boundary() -> None:
    assert_identical(
        records(simulate(config(), SHAREGPT, 1)), records(simulate(config(), SHAREGPT, 2))
    )


def test_workload_seed_changes_the_requests() -> None:
    a = records(simulate(config(), SHAREGPT))
    b = records(simulate(config(), dataclasses.replace(SHAREGPT, seed=4)))
    assert not np.array_equal(a.prompt_len, b.prompt_len)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"engine": "sglang", "engine_version": "0.5.9", "mem_fraction": 0.85, "max_num_seqs": 0},
        {"max_num_seqs": 16, "max_num_batched_tokens": 2048},
        {"weight_dtype": "fp8", "tensor_parallel": 4, "data_parallel": 2, "expert_parallel": True},
        {"replicas": 3},
        {"mem_fraction": 0.83, "max_model_len": 32768},
        {"chunked_prefill": False, "max_model_len": 16384, "max_num_batched_tokens": 16384},
    ],
)
def test_conservation(overrides: dict[str, object]) -> None:
    workload = Workload(name="w", dataset="sharegpt-like", num_prompts=200, seed=5)
    result = simulate(config(**overrides), workload)
    rec = records(result)
    assert rec.num_requests == 200
    assert rec.success.all()
    # Every successful request produced exactly its requested output tokens.
    requested = make_requests(workload).output_len
    np.testing.assert_array_equal(rec.output_len, requested)
    assert len(rec.itl_gaps()) == int((requested - 1).sum())
    assert (rec.itl_s >= 0).all()
    assert (rec.ttft_s > 0).all()
    assert (rec.e2el_s >= rec.ttft_s).all()
    assert rec.duration_s >= float((rec.start_s + rec.e2el_s).max() - rec.start_s.min()) - 1e-9


def test_max_num_seqs_caps_the_running_set() -> None:
    result = simulate(config(max_num_seqs=24, max_num_batched_tokens=4096), SHAREGPT)
    assert result.max_running <= 24


def test_too_long_requests_fail_without_crashing() -> None:
    workload = Workload(
        name="long", dataset="random", num_prompts=6, input_len=4000, output_len=200
    )
    rec = records(simulate(config(max_model_len=4096), workload))
    assert not rec.success.any()
    assert rec.output_len.sum() == 0


def test_throughput_below_compute_roofline() -> None:
    cfg = config()
    rec = records(simulate(cfg, SHAREGPT))
    tokens = rec.prompt_len[rec.success].sum() + rec.output_len[rec.success].sum()
    peak_flops = cfg.gpus_per_replica * cfg.gpu.bf16_tflops * 1e12
    bound = peak_flops / (2.0 * (cfg.model.active_params - cfg.model.vocab * cfg.model.hidden))
    assert tokens / rec.duration_s < bound


def test_smaller_max_num_seqs_trades_throughput_for_tpot() -> None:
    workload = Workload(name="w", dataset="sharegpt-like", num_prompts=600, seed=1)
    small = records(simulate(config(max_num_seqs=64), workload))
    large = records(simulate(config(max_num_seqs=1024), workload))
    assert p99_tpot_s(small) < p99_tpot_s(large)
    assert output_tok_s(small) < output_tok_s(large)


def test_kv_bound_config_preempts_and_still_finishes() -> None:
    workload = Workload(
        name="r", dataset="random", num_prompts=300, input_len=2000, output_len=600
    )
    result = simulate(config(mem_fraction=0.83, max_model_len=32768), workload)
    rec = records(result)
    assert rec.success.all()
    assert result.preemptions > 0


def test_closed_loop_respects_max_concurrency() -> None:
    workload = Workload(
        name="c", dataset="random", num_prompts=40, input_len=256, output_len=32, max_concurrency=4
    )
    rec = records(simulate(config(), workload))
    ends = rec.start_s + rec.e2el_s
    for t in rec.start_s:
        in_flight = int(((rec.start_s <= t + 1e-12) & (ends > t + 1e-12)).sum())
        assert in_flight <= 4
    assert rec.start_s.max() > 0


def test_poisson_arrivals_spread_the_sends() -> None:
    workload = Workload(name="p", dataset="sharegpt-like", num_prompts=100, request_rate=5.0)
    rec = records(simulate(config(), workload))
    assert rec.start_s.min() == 0.0
    assert math.isclose(rec.start_s.max() / 99, 0.2, rel_tol=0.35)


def test_all_at_once_has_a_frontend_ttft_floor() -> None:
    rec = records(simulate(config(), Workload("b", "sharegpt-like", 1000)))
    # 1,000 requests processor-shared at ~5.7 ms each: nobody sees a token before ~5 s.
    assert rec.ttft_s.min() > 4.0


def test_sanity_target_bf16_tp8_throughput_within_30_percent() -> None:
    rec = records(simulate(config(), Workload("b", "sharegpt-like", 1000)))
    assert 0.7 * 4015 < output_tok_s(rec) < 1.3 * 4015


def test_async_scheduling_and_cuda_graphs_help() -> None:
    base = output_tok_s(records(simulate(config(), SHAREGPT)))
    assert output_tok_s(records(simulate(config(async_scheduling=False), SHAREGPT))) < base
    assert output_tok_s(records(simulate(config(cuda_graphs=False), SHAREGPT))) < base


def test_replicas_add_throughput() -> None:
    workload = Workload(name="w", dataset="sharegpt-like", num_prompts=600, seed=2)
    fp8 = {"weight_dtype": "fp8", "tensor_parallel": 4}
    one = records(simulate(config(**fp8), workload))
    two = records(simulate(config(**fp8, replicas=2), workload))
    assert output_tok_s(two) > output_tok_s(one)

"""Engine variants, speculative decoding, FP8 paths, workloads and noise of the simulator."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from runners.bench.metrics import summarize
from runners.bench.records import RequestRecords
from runners.catalog import get_gpu, get_model
from runners.sim import Noise, SimResult, simulate
from runners.sim.memory import plan_memory
from runners.sim.perf import accepted_per_step
from runners.sim.reference import dense_config, reference_config
from runners.types import CrashClass, EngineName, Workload
from runners.workload import make_requests, send_times, workload_streams

SHAREGPT = Workload(name="sharegpt", dataset="sharegpt-like", num_prompts=300, seed=3)


def records(result: SimResult) -> RequestRecords:
    assert result.crash is None, result.crash
    assert result.records is not None
    return result.records


def out_tok_s(rec: RequestRecords) -> float:
    return float(rec.output_len[rec.success].sum() / rec.duration_s)


def mean_tpot_s(rec: RequestRecords) -> float:
    ok = rec.success & (rec.output_len > 1)
    return float(np.mean((rec.e2el_s[ok] - rec.ttft_s[ok]) / (rec.output_len[ok] - 1)))


# --- engine variants -------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["trtllm", "mindie"])
def test_other_engines_conserve_requests_and_tokens(engine: EngineName) -> None:
    rec = records(simulate(dense_config(engine), SHAREGPT))
    requested = make_requests(SHAREGPT).output_len
    assert rec.success.all()
    np.testing.assert_array_equal(rec.output_len, requested)
    assert len(rec.itl_gaps()) == int((requested - 1).sum())
    assert (rec.ttft_s > 0).all()


def test_guaranteed_no_evict_never_preempts_and_runs_fewer_requests() -> None:
    work = Workload(name="r", dataset="random", num_prompts=300, input_len=2000, output_len=600)
    gne = simulate(dense_config("trtllm", mem_fraction=0.3), work)
    maxu = simulate(
        dense_config("trtllm", capacity_policy="max_utilization", mem_fraction=0.3), work
    )
    assert records(gne).success.all() and records(maxu).success.all()
    assert gne.preemptions == 0
    assert maxu.preemptions > 0
    assert gne.max_running < maxu.max_running


def test_trtllm_kv_is_a_fraction_of_memory_free_after_weights() -> None:
    low = plan_memory(dense_config("trtllm", mem_fraction=0.45))
    high = plan_memory(dense_config("trtllm", mem_fraction=0.9))
    free = high.kv_gib / 0.9
    assert math.isclose(low.kv_gib, 0.45 * free, rel_tol=1e-9)
    assert high.weights_gib + high.kv_gib < high.usable_gib


def test_mindie_npu_mem_size_fixes_the_kv_pool() -> None:
    plan = plan_memory(dense_config("mindie", kv_cache_gib=8.0))
    assert math.isclose(plan.kv_gib, 8.0)
    per_token = plan.kv_bytes_per_token
    assert plan.kv_tokens == int(8.0 * 2**30 // (per_token * 128)) * 128


def test_mindie_prefill_batch_limit_delays_first_tokens() -> None:
    """200 prompts at once all fit the KV pool: 2 per prefill batch instead of 16 (8,192
    tokens) takes 100 prefill steps instead of 13, each with its fixed cost, so the last first
    token comes later (the mean barely moves: smaller batches also finish their first requests
    sooner, the prefill being compute-bound)."""
    work = Workload(name="r", dataset="random", num_prompts=200, input_len=512, output_len=64)
    wide_run = simulate(dense_config("mindie"), work)
    narrow_run = simulate(dense_config("mindie", max_prefill_batch=2), work)
    wide, narrow = records(wide_run), records(narrow_run)
    assert narrow_run.steps > wide_run.steps + 80
    assert narrow.ttft_s.max() > wide.ttft_s.max()


def test_trtllm_fp8_on_a100_and_awq_fail_like_the_engine() -> None:
    fp8 = simulate(dense_config("trtllm", weight_dtype="fp8"), SHAREGPT).crash
    awq = simulate(dense_config("trtllm", weight_quant="awq"), SHAREGPT).crash
    assert fp8 is not None and "Unsupported SM version for FP8 block scaling GEMM" in fp8.message
    assert awq is not None and awq.message == "KeyError: 'weight'"


# --- FP8 and quantization --------------------------------------------------------------------
def test_fp8_kv_cache_doubles_capacity() -> None:
    bf16 = plan_memory(dense_config())
    fp8 = plan_memory(dense_config(kv_cache_dtype="fp8"))
    assert fp8.kv_tokens == pytest.approx(2 * bf16.kv_tokens, rel=0.01)


def test_fp8_weights_use_fp8_tensor_cores_only_where_they_exist() -> None:
    work = Workload(name="r", dataset="random", num_prompts=64, input_len=4000, output_len=4)
    h100 = dense_config(gpu=get_gpu("H100"))
    a100 = dense_config()
    # Prefill-bound: FP8 speeds up the H100 (2x peak) more than the A100 (W8A16, BF16 peak).
    gain_h = out_tok_s(records(simulate(dataclasses.replace(h100, weight_dtype="fp8"), work)))
    gain_h /= out_tok_s(records(simulate(h100, work)))
    gain_a = out_tok_s(records(simulate(dataclasses.replace(a100, weight_dtype="fp8"), work)))
    gain_a /= out_tok_s(records(simulate(a100, work)))
    assert gain_h > gain_a


def test_four_bit_weights_shrink_weight_memory() -> None:
    # Linear layers at ~0.53 B/weight; embeddings and LM head stay BF16.
    awq = plan_memory(dense_config(weight_quant="awq")).weights_gib
    assert (
        0.25 * plan_memory(dense_config()).weights_gib
        < awq
        < 0.4 * plan_memory(dense_config()).weights_gib
    )


def test_gpt_oss_experts_are_mxfp4() -> None:
    cfg = dense_config(model=get_model("gpt-oss-20b"), gpu=get_gpu("H100"))
    # ~21B params with MXFP4 experts and BF16 attention/embeddings: about 13 GiB, not 39.
    assert 10 < plan_memory(cfg).weights_gib < 16


# --- speculative decoding --------------------------------------------------------------------
def test_expected_accepted_tokens() -> None:
    assert accepted_per_step(3, 0.0) == pytest.approx(1.0)
    assert accepted_per_step(3, 0.5) == pytest.approx(1 + 0.5 + 0.25 + 0.125)


def test_spec_decode_cuts_tpot_at_low_concurrency_not_at_high() -> None:
    low = Workload(
        name="c1",
        dataset="random",
        num_prompts=8,
        input_len=256,
        output_len=128,
        max_concurrency=1,
        draft_acceptance_rate=0.7,
    )
    spec = dense_config(spec_method="eagle3", spec_tokens=3)
    plain = mean_tpot_s(records(simulate(dense_config(), low)))
    fast = mean_tpot_s(records(simulate(spec, low)))
    assert fast < 0.75 * plain
    none_accepted = dataclasses.replace(low, draft_acceptance_rate=0.0)
    assert mean_tpot_s(records(simulate(spec, none_accepted))) > plain
    high = Workload(name="hi", dataset="random", num_prompts=256, input_len=256, output_len=128)
    gain_high = out_tok_s(records(simulate(spec, high))) / out_tok_s(
        records(simulate(dense_config(), high))
    )
    assert gain_high < plain / fast


def test_spec_decode_budget_is_validated() -> None:
    crash = simulate(
        dense_config(spec_method="ngram", spec_tokens=8, max_num_batched_tokens=2048), SHAREGPT
    ).crash
    assert crash is not None and crash.crash_class is CrashClass.INVALID_CONFIG


# --- workloads -------------------------------------------------------------------------------
def test_gamma_burstiness_keeps_the_rate_and_changes_the_spread() -> None:
    gaps = {}
    for b in (0.25, 1.0, 4.0):
        w = Workload(
            name="g",
            dataset="random",
            num_prompts=4000,
            input_len=8,
            output_len=8,
            request_rate=10.0,
            burstiness=b,
        )
        t = send_times(w, workload_streams(w)[1])
        gaps[b] = np.diff(t)
        assert gaps[b].mean() == pytest.approx(0.1, rel=0.1)
    assert np.std(gaps[0.25]) > np.std(gaps[1.0]) > np.std(gaps[4.0])


def test_shared_prefix_groups_cut_prefill_work() -> None:
    base = Workload(
        name="p",
        dataset="random",
        num_prompts=200,
        input_len=64,
        output_len=16,
        prefix_len=2048,
        prefix_groups=4,
        request_rate=20.0,
    )
    cached = records(simulate(dense_config(), base))
    uncached = records(simulate(dense_config(prefix_caching=False), base))
    assert (cached.prompt_len == 2048 + 64).all()
    assert np.median(cached.ttft_s) < np.median(uncached.ttft_s)


def test_multi_turn_sends_each_turn_after_the_previous_and_carries_history() -> None:
    work = Workload(
        name="mt", dataset="random", num_prompts=60, input_len=100, output_len=20, turns=3
    )
    req = make_requests(work)
    assert req.parent is not None
    np.testing.assert_array_equal(req.prompt_len[:3], [100, 220, 340])
    rec = records(simulate(dense_config(), work))
    ends = rec.start_s + rec.e2el_s
    child = np.nonzero(req.parent >= 0)[0]
    assert (rec.start_s[child] >= ends[req.parent[child]] - 1e-12).all()
    cached = records(simulate(dense_config(), work))
    cold = records(simulate(dense_config(prefix_caching=False), work))
    assert cached.ttft_s[child].mean() < cold.ttft_s[child].mean()


def test_closed_loop_concurrency_one_is_sequential() -> None:
    work = Workload(
        name="c1",
        dataset="random",
        num_prompts=20,
        input_len=128,
        output_len=16,
        max_concurrency=1,
    )
    rec = records(simulate(dense_config(), work))
    ends = rec.start_s + rec.e2el_s
    assert (rec.start_s[1:] >= ends[:-1] - 1e-12).all()


# --- noise -----------------------------------------------------------------------------------
def test_noise_is_off_by_default_and_seeded_when_on() -> None:
    quiet = records(simulate(dense_config(), SHAREGPT, seed=1))
    same = records(simulate(dense_config(), SHAREGPT, seed=1, noise=Noise()))
    np.testing.assert_array_equal(quiet.ttft_s, same.ttft_s)
    a = records(simulate(dense_config(), SHAREGPT, seed=5, noise=Noise.typical()))
    b = records(simulate(dense_config(), SHAREGPT, seed=5, noise=Noise.typical()))
    np.testing.assert_array_equal(a.e2el_s, b.e2el_s)
    c = records(simulate(dense_config(), SHAREGPT, seed=6, noise=Noise.typical()))
    assert not np.array_equal(a.e2el_s, c.e2el_s)
    np.testing.assert_array_equal(a.prompt_len, c.prompt_len)  # same requests


def test_run_noise_varies_throughput_by_about_the_configured_sigma() -> None:
    work = Workload(name="r", dataset="random", num_prompts=64, input_len=256, output_len=64)
    noise = Noise(run_sigma=0.05)
    values = [
        summarize(records(simulate(dense_config(), work, seed=s, noise=noise)), 1).duration_s
        for s in range(24)
    ]
    spread = float(np.std(np.log(values)))
    assert 0.02 < spread < 0.09


def test_observed_backend_failures_are_scoped_to_what_was_observed() -> None:
    fp8_tp4 = dataclasses.replace(
        reference_config(), engine_version="0.11.0", weight_dtype="fp8", tensor_parallel=4
    )
    flashinfer = simulate(dataclasses.replace(fp8_tp4, attention_backend="flashinfer"), SHAREGPT)
    xformers = simulate(dataclasses.replace(fp8_tp4, attention_backend="xformers"), SHAREGPT)
    assert flashinfer.crash is not None and flashinfer.crash.phase == "startup"
    assert xformers.crash is not None and xformers.crash.phase == "load"
    newer = dataclasses.replace(fp8_tp4, engine_version="0.33.0", attention_backend="flashinfer")
    assert simulate(newer, SHAREGPT).crash is None

"""Memory planning and crash rules of the simulator, with the engines' own error texts."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from runners.catalog import get_gpu, get_model
from runners.sim import simulate
from runners.sim.memory import check_memory, plan_memory
from runners.sim.reference import reference_config
from runners.sim.rules import check_config
from runners.types import CrashClass, ServingConfig, Workload

TINY = Workload(name="tiny", dataset="random", num_prompts=8, input_len=64, output_len=8)


def config(**overrides: object) -> ServingConfig:
    """vLLM 0.33 defaults for Qwen3-235B BF16 TP8 on 8xH100, with `overrides` applied."""
    return dataclasses.replace(reference_config(), **overrides)  # type: ignore[arg-type]


def test_defaults_serve() -> None:
    result = simulate(config(), TINY)
    assert result.crash is None
    assert result.records is not None
    assert result.memory is not None
    assert result.kv_cache_tokens == result.memory.kv_tokens > 262144


def test_fp8_tp8_without_ep_fails_with_block_n_text() -> None:
    result = simulate(config(weight_dtype="fp8"), TINY)
    assert result.crash is not None
    assert result.crash.crash_class is CrashClass.FP8_BLOCK_SHARD
    assert (
        "The output_size of gate's and up's weight = 192 is not divisible by weight "
        "quantization block_n = 128." in result.crash.message
    )
    assert result.kv_cache_tokens == 0


def test_fp8_tp8_with_ep_and_tp4_pass() -> None:
    assert simulate(config(weight_dtype="fp8", expert_parallel=True), TINY).crash is None
    assert simulate(config(weight_dtype="fp8", tensor_parallel=4), TINY).crash is None


def test_tp3_fails_with_heads_text() -> None:
    crash = check_config(config(tensor_parallel=3))
    assert crash is not None
    assert crash.crash_class is CrashClass.TP_HEADS
    assert crash.message == (
        "ValueError: Total number of attention heads (64) must be divisible by tensor parallel "
        "size (3)."
    )


def test_bf16_tp2_weights_oom() -> None:
    result = simulate(config(tensor_parallel=2), TINY)
    assert result.crash is not None
    assert result.crash.crash_class is CrashClass.WEIGHTS_OOM
    assert result.crash.message.startswith("torch.OutOfMemoryError: CUDA out of memory.")


def test_tiny_mem_fraction_has_no_kv_memory() -> None:
    result = simulate(config(mem_fraction=0.5), TINY)
    assert result.crash is not None
    assert result.crash.crash_class is CrashClass.NO_KV_MEMORY
    assert "No available memory for the cache blocks" in result.crash.message


def test_sglang_no_kv_memory_text() -> None:
    result = simulate(config(engine="sglang", engine_version="0.5.9", mem_fraction=0.5), TINY)
    assert result.crash is not None
    assert result.crash.crash_class is CrashClass.NO_KV_MEMORY
    assert "Not enough memory. Please try to increase --mem-fraction-static." in (
        result.crash.message
    )


def test_max_model_len_above_kv_capacity() -> None:
    result = simulate(config(mem_fraction=0.8), TINY)
    assert result.crash is not None
    assert result.crash.crash_class is CrashClass.KV_TOO_SMALL
    msg = result.crash.message
    assert msg.startswith(
        "ValueError: To serve at least one request with the model's max seq len (262144), ("
    )
    assert "GiB KV cache is needed, which is larger than the available KV cache memory (" in msg
    assert "the estimated maximum model length is" in msg


def test_kv_too_small_uses_011_spelling() -> None:
    result = simulate(config(mem_fraction=0.8, engine_version="0.11.0"), TINY)
    assert result.crash is not None
    assert "models's max seq len (262144)" in result.crash.message


def test_max_model_len_above_model_limit() -> None:
    crash = check_config(config(model=get_model("Qwen3-235B-A22B")))
    assert crash is not None
    assert crash.crash_class is CrashClass.MODEL_LEN
    assert "User-specified max_model_len (262144)" in crash.message


def test_fp8_tp4_runtime_oom_under_load_at_32k_but_not_16k() -> None:
    base = config(weight_dtype="fp8", tensor_parallel=4)
    crashed = simulate(dataclasses.replace(base, max_num_batched_tokens=32768), TINY)
    assert crashed.crash is not None
    assert crashed.crash.crash_class is CrashClass.RUNTIME_OOM
    assert crashed.crash.phase == "load"
    assert crashed.memory is not None
    ok = simulate(dataclasses.replace(base, max_num_batched_tokens=16384), TINY)
    assert ok.crash is None
    assert ok.records is not None


def test_backend_rules() -> None:
    deep_gemm_bf16 = check_config(config(moe_backend="deep_gemm"))
    assert deep_gemm_bf16 is not None
    assert deep_gemm_bf16.crash_class is CrashClass.UNSUPPORTED_BACKEND
    assert check_config(config(moe_backend="flashinfer_cutlass")) is None
    sglang = {"engine": "sglang", "engine_version": "0.5.9"}
    fp8_cutlass = check_config(
        config(**sglang, weight_dtype="fp8", tensor_parallel=4, moe_backend="flashinfer_cutlass")
    )
    assert fp8_cutlass is not None
    assert fp8_cutlass.crash_class is CrashClass.UNSUPPORTED_BACKEND
    assert "flashinfer_cutlass" in fp8_cutlass.message
    assert check_config(config(**sglang, attention_backend="fa3")) is None
    fa3_a100 = check_config(
        config(**sglang, attention_backend="fa3", gpu=get_gpu("A100"), max_num_seqs=256)
    )
    assert fa3_a100 is not None
    assert "fa3" in fa3_a100.message


def test_chunked_prefill_off_needs_budget_above_max_model_len() -> None:
    crash = check_config(config(chunked_prefill=False))
    assert crash is not None
    assert crash.crash_class is CrashClass.INVALID_CONFIG
    assert "max_num_batched_tokens (8192) is smaller than max_model_len (262144)" in crash.message


def test_kv_replicates_beyond_kv_heads() -> None:
    model = get_model("Qwen3-235B-A22B-Instruct-2507")
    assert model.kv_bytes_per_token_per_gpu(4, 2) == model.kv_bytes_per_token_per_gpu(8, 2)
    fp8_kv = plan_memory(config(kv_cache_dtype="fp8"))
    bf16_kv = plan_memory(config())
    assert fp8_kv.kv_bytes_per_token * 2 == bf16_kv.kv_bytes_per_token
    assert fp8_kv.kv_tokens >= 2 * bf16_kv.kv_tokens - 16


def test_fp8_never_increases_weight_bytes() -> None:
    for tp in (4, 8):
        bf16 = plan_memory(config(tensor_parallel=tp))
        fp8 = plan_memory(config(tensor_parallel=tp, weight_dtype="fp8"))
        assert fp8.weights_gib < bf16.weights_gib


def test_crash_ramp_is_seeded_near_the_boundary() -> None:
    plan = plan_memory(config())
    edge = config(max_model_len=plan.kv_tokens)
    outcomes = [
        check_memory(edge, plan_memory(edge), np.random.default_rng(seed)) is None
        for seed in range(40)
    ]
    assert any(outcomes) and not all(outcomes)
    again = [
        check_memory(edge, plan_memory(edge), np.random.default_rng(seed)) is None
        for seed in range(40)
    ]
    assert outcomes == again
    far = config(max_model_len=plan.kv_tokens // 2)
    assert all(
        check_memory(far, plan_memory(far), np.random.default_rng(s)) is None for s in range(20)
    )


@settings(max_examples=60, deadline=None)
@given(
    low=st.floats(0.5, 0.97),
    step=st.floats(0.0, 0.2),
    engine=st.sampled_from(["vllm", "sglang"]),
    tp=st.sampled_from([4, 8]),
    dtype=st.sampled_from(["bf16", "fp8"]),
    kv_dtype=st.sampled_from(["bf16", "fp8"]),
    tokens=st.sampled_from([2048, 8192, 32768]),
)
def test_more_memory_never_lowers_kv_capacity(
    low: float, step: float, engine: str, tp: int, dtype: str, kv_dtype: str, tokens: int
) -> None:
    high = min(0.98, low + step)
    common = {
        "engine": engine,
        "tensor_parallel": tp,
        "weight_dtype": dtype,
        "kv_cache_dtype": kv_dtype,
        "max_num_batched_tokens": tokens,
        "expert_parallel": dtype == "fp8",
    }
    small = plan_memory(config(mem_fraction=low, **common))
    large = plan_memory(config(mem_fraction=high, **common))
    assert large.kv_tokens >= small.kv_tokens
    assert large.kv_tokens_per_replica >= small.kv_tokens_per_replica

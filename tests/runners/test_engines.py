"""Engine adapters: hardware-dependent defaults, argument checks with real text, golden argv."""

from __future__ import annotations

import pytest

from runners.engines import launch_spec, resolve, serve_command
from runners.types import Candidate, Crash, CrashClass, NodeGroup, Placement, ServingConfig

MODEL = "Qwen3-235B-A22B-Instruct-2507"
BF16 = "Qwen/Qwen3-235B-A22B-Instruct-2507"
FP8 = "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8"
H100X8 = NodeGroup("h100x8", "H100-SXM-80GB", 8)


def vllm(settings: dict[str, object], checkpoint: str = BF16) -> Candidate:
    dtype = "fp8" if checkpoint == FP8 else "bf16"
    return Candidate.make("vllm", "0.33.0", MODEL, checkpoint, dtype, settings)  # type: ignore[arg-type]


def sglang(settings: dict[str, object]) -> Candidate:
    return Candidate.make("sglang", "0.5.23", MODEL, BF16, "bf16", settings)  # type: ignore[arg-type]


def test_vllm_defaults_on_h100() -> None:
    config = resolve(vllm({"tensor-parallel-size": 8}), H100X8)
    assert isinstance(config, ServingConfig)
    assert (config.max_num_batched_tokens, config.max_num_seqs) == (8192, 1024)
    assert config.mem_fraction == 0.92
    assert config.chunked_prefill and config.prefix_caching and config.async_scheduling
    assert config.replicas == 1


def test_vllm_throughput_mode_doubles_only_defaulted_limits() -> None:
    doubled = resolve(vllm({"tensor-parallel-size": 8, "performance-mode": "throughput"}), H100X8)
    assert isinstance(doubled, ServingConfig)
    assert (doubled.max_num_batched_tokens, doubled.max_num_seqs) == (16384, 2048)
    explicit = resolve(
        vllm({"tensor-parallel-size": 8, "performance-mode": "throughput", "max-num-seqs": 256}),
        H100X8,
    )
    assert isinstance(explicit, ServingConfig)
    assert (explicit.max_num_batched_tokens, explicit.max_num_seqs) == (16384, 256)


def test_vllm_chunked_off_needs_budget_for_max_model_len() -> None:
    crash = resolve(
        vllm({"enable-chunked-prefill": False, "max-num-batched-tokens": 16384}), H100X8
    )
    assert isinstance(crash, Crash)
    assert crash.crash_class == CrashClass.INVALID_CONFIG
    assert crash.message.startswith(
        "ValueError: max_num_batched_tokens (16384) is smaller than max_model_len (262144)."
    )


def test_vllm_budget_below_max_num_seqs_is_the_engine_error() -> None:
    crash = resolve(vllm({"max-num-batched-tokens": 2048, "max-num-seqs": 4096}), H100X8)
    assert isinstance(crash, Crash)
    assert crash.message == (
        "ValueError: max_num_batched_tokens (2048) must be greater than or equal to "
        "max_num_seqs (4096)."
    )


def test_vllm_world_larger_than_node() -> None:
    crash = resolve(vllm({"tensor-parallel-size": 8, "data-parallel-size": 2}), H100X8)
    assert isinstance(crash, Crash) and crash.crash_class == CrashClass.TOO_MANY_GPUS


def test_smaller_instances_are_replicated_to_fill_the_node() -> None:
    config = resolve(vllm({"tensor-parallel-size": 2}, FP8), H100X8)
    assert isinstance(config, ServingConfig)
    assert config.replicas == 4 and config.gpus_per_replica == 2


def test_serve_command_omits_flags_equal_to_defaults() -> None:
    candidate = vllm(
        {
            "tensor-parallel-size": 8,
            "max-num-seqs": 1024,
            "gpu-memory-utilization": 0.92,
            "enable-chunked-prefill": True,
            "performance-mode": "balanced",
        }
    )
    assert serve_command(candidate, H100X8) == (
        "vllm serve Qwen/Qwen3-235B-A22B-Instruct-2507 --tensor-parallel-size 8"
    )


def test_serve_command_keeps_a_value_that_differs_from_the_mode_default() -> None:
    candidate = vllm(
        {"tensor-parallel-size": 4, "performance-mode": "throughput", "max-num-seqs": 1024}, FP8
    )
    assert serve_command(candidate, H100X8) == (
        "vllm serve Qwen/Qwen3-235B-A22B-Instruct-2507-FP8 --tensor-parallel-size 4 "
        "--max-num-seqs 1024 --performance-mode throughput"
    )


def test_vllm_booleans_use_enable_disable_pairs() -> None:
    candidate = vllm(
        {
            "enable-chunked-prefill": False,
            "max-num-batched-tokens": 262144,
            "enable-prefix-caching": False,
            "enable-expert-parallel": True,
            "async-scheduling": False,
        }
    )
    command = serve_command(candidate, H100X8)
    assert "--disable-chunked-prefill" in command
    assert "--disable-prefix-caching" in command
    assert "--enable-expert-parallel" in command
    assert "--no-async-scheduling" in command


def test_launch_spec_is_an_argv_with_port_and_devices() -> None:
    placement = Placement(H100X8, (4, 5, 6, 7))
    spec = launch_spec(vllm({"tensor-parallel-size": 4}, FP8), placement, port=8123)
    assert spec.argv == (
        "vllm",
        "serve",
        FP8,
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--tensor-parallel-size",
        "4",
    )
    assert dict(spec.env)["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"


def test_sglang_memory_defaults_on_h100() -> None:
    config = resolve(sglang({"tp-size": 8}), H100X8)
    assert isinstance(config, ServingConfig)
    assert config.max_num_batched_tokens == 8192  # chunked-prefill-size below 90 GB
    assert config.cuda_graph_max_batch == 512  # tp >= 4
    assert 0.75 < config.mem_fraction < 0.9
    assert config.max_num_seqs == 0  # derived from the KV pool by the engine


def test_sglang_chunked_off_and_ep_rules() -> None:
    off = resolve(sglang({"tp-size": 8, "chunked-prefill-size": -1}), H100X8)
    assert isinstance(off, ServingConfig) and not off.chunked_prefill
    bad = resolve(sglang({"tp-size": 4, "ep-size": 8}), H100X8)
    assert isinstance(bad, Crash) and bad.crash_class == CrashClass.INVALID_CONFIG


def test_sglang_command_line() -> None:
    candidate = sglang({"tp-size": 8, "ep-size": 8, "disable-radix-cache": True})
    assert serve_command(candidate, H100X8) == (
        "python -m sglang.launch_server --model-path Qwen/Qwen3-235B-A22B-Instruct-2507 "
        "--tp-size 8 --ep-size 8 --disable-radix-cache"
    )


@pytest.mark.parametrize("engine", ["tgi"])
def test_unknown_engine_is_a_clear_error(engine: str) -> None:
    from runners.engines import get_engine
    from runners.errors import EngineError

    with pytest.raises(EngineError, match="known engines: vllm, sglang"):
        get_engine(engine)

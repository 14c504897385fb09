"""The simulator on what users run: MLA, shared experts and dense layers, capped attention,
checkpoint formats and their compute paths, and the figures a GPU's sources leave unknown."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from runners.catalog import Quantization, get_gpu, get_model, resolve_checkpoint
from runners.engines import resolve
from runners.engines.quantized import with_quantization
from runners.errors import CatalogError
from runners.sim import simulate
from runners.sim.memory import plan_memory, weight_bytes_per_gpu
from runners.sim.perf import StepModel
from runners.types import Candidate, NodeGroup, ServingConfig, Workload

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"
WORK = Workload(name="w", dataset="random", num_prompts=64, input_len=2048, output_len=64)


def config_of(
    checkpoint: str,
    gpu: str,
    gpus: int,
    fmt: str = "bf16",
    settings: dict[str, object] | None = None,
    config: Path | None = None,
) -> ServingConfig:
    found = resolve_checkpoint(checkpoint, config=config)
    candidate = Candidate.make(
        "vllm",
        "0.33.0",
        found.model.name,
        checkpoint,
        fmt,
        settings or {},  # type: ignore[arg-type]
    )
    resolved = resolve(candidate, NodeGroup("g", gpu, gpus))
    assert isinstance(resolved, ServingConfig), resolved
    return resolved


def out_tok_s(config: ServingConfig, work: Workload = WORK) -> float:
    result = simulate(config, work)
    assert result.records is not None, result.crash
    rec = result.records
    return float(rec.output_len.sum() / rec.duration_s)


def deepseek_v3_on_h200() -> ServingConfig:
    """DeepSeek-V3 (block FP8, MLA) read from its config, TP8 on one node of 8x H200."""
    return config_of(
        "deepseek-ai/DeepSeek-V3",
        "H200",
        8,
        "fp8",
        {"tensor-parallel-size": 8, "max-model-len": 16384},
        MODELS / "deepseek-ai--DeepSeek-V3.json",
    )


def test_deepseek_v3_fp8_serves_on_eight_h200() -> None:
    config = deepseek_v3_on_h200()
    assert config.model.mla is not None and config.weight_dtype == "fp8"
    plan = plan_memory(config)
    # ~671B FP8 weights over 8 GPUs, MLA latent KV replicated on every rank
    assert 75 < plan.weights_gib < 95
    assert plan.kv_bytes_per_token == config.model.kv_bytes_per_token_per_gpu(8, 2)
    assert out_tok_s(config) > 0


def test_mla_decode_streams_far_fewer_kv_bytes_than_full_heads() -> None:
    config = deepseek_v3_on_h200()
    as_mha = dataclasses.replace(
        config, model=dataclasses.replace(config.model, mla=None, kv_heads=128, head_dim=192)
    )
    mla_step, mha_step = StepModel(config, 8192), StepModel(as_mha, 8192)
    assert mla_step.decode_s_per_ctx < mha_step.decode_s_per_ctx / 5


def test_shared_experts_and_leading_dense_layers_in_weights_and_time() -> None:
    base = config_of("Qwen/Qwen3-30B-A3B", "H100", 1, settings={"max-model-len": 8192})
    m = base.model
    shared = dataclasses.replace(
        base, model=dataclasses.replace(m, shared_expert_intermediate=2048)
    )
    assert weight_bytes_per_gpu(shared) - weight_bytes_per_gpu(base) == pytest.approx(
        m.layers * 3 * m.hidden * 2048 * 2.0
    )
    assert StepModel(shared, 8192).t_tokens_s[256] > StepModel(base, 8192).t_tokens_s[256]
    dense = dataclasses.replace(base, model=dataclasses.replace(m, dense_layers=4))
    # four layers trade their router and 128 experts for one dense MLP of `intermediate`
    per_layer = m.hidden * m.num_experts * 2.0 + m.expert_params_per_layer * 2.0
    swapped = 4 * (per_layer - 3 * m.hidden * m.intermediate * 2.0)
    assert weight_bytes_per_gpu(base) - weight_bytes_per_gpu(dense) == pytest.approx(swapped)


def test_sliding_window_layers_cap_decode_attention_at_long_context() -> None:
    config = config_of("openai/gpt-oss-20b", "H100", 1)
    full = dataclasses.replace(
        config, model=dataclasses.replace(config.model, sliding_layers=0, sliding_window=0)
    )
    capped, uncapped = StepModel(config, 8192), StepModel(full, 8192)
    long_ctx = 64 * 32000.0
    t_capped = capped.step_s(64, 64, 64, long_ctx, 0.0, 0.0)
    t_full = uncapped.step_s(64, 64, 64, long_ctx, 0.0, 0.0)
    assert t_capped < t_full
    # below the window both are the same model
    assert capped.step_s(64, 64, 64, 64 * 100.0, 0.0, 0.0) == pytest.approx(
        uncapped.step_s(64, 64, 64, 64 * 100.0, 0.0, 0.0)
    )


@pytest.mark.parametrize(
    ("fmt", "checkpoint"),
    [
        ("int8", "Qwen/Qwen3-32B-W8A8"),
        ("awq", "Qwen/Qwen3-32B-AWQ"),
        ("gptq", "Qwen/Qwen3-32B-GPTQ-Int4"),
        ("nvfp4", "nvidia/Qwen3-32B-NVFP4"),
        ("fp8", "Qwen/Qwen3-32B-FP8"),
    ],
)
def test_each_format_sets_weight_bytes_and_its_compute_path(fmt: str, checkpoint: str) -> None:
    bf16 = config_of("Qwen/Qwen3-32B", "B200", 1)
    quantized = config_of(checkpoint, "B200", 1, fmt)
    assert weight_bytes_per_gpu(quantized) < 0.6 * weight_bytes_per_gpu(bf16)
    if fmt in ("int8", "nvfp4", "fp8"):  # tensor-core paths faster than BF16 on B200
        assert (
            StepModel(quantized, 8192).rates.dense_flops > StepModel(bf16, 8192).rates.dense_flops
        )


def test_nvfp4_falls_back_to_weight_only_kernels_without_fp4_tensor_cores() -> None:
    h100 = config_of("nvidia/Qwen3-32B-NVFP4", "H100", 1, "nvfp4")
    b200 = config_of("nvidia/Qwen3-32B-NVFP4", "B200", 1, "nvfp4")
    bf16_h100 = config_of("Qwen/Qwen3-32B", "H100", 1)
    assert StepModel(h100, 8192).rates.dense_flops < StepModel(bf16_h100, 8192).rates.dense_flops
    assert StepModel(b200, 8192).rates.dense_flops > StepModel(h100, 8192).rates.dense_flops


def test_per_tensor_fp8_has_no_block_shard_rule(tmp_path: Path) -> None:
    fp8 = Quantization("fp8", block_scaled=False, source="test")
    base = config_of("Qwen/Qwen3-32B", "H100", 8, settings={"tensor-parallel-size": 8})
    config = with_quantization(dataclasses.replace(base, weight_dtype="fp8"), fp8)
    assert config.weight_quant == "fp8-tensor"
    assert simulate(config, WORK).crash is None


def test_gpt_oss_from_its_config_keeps_mxfp4_experts(tmp_path: Path) -> None:
    catalogued = config_of("openai/gpt-oss-20b", "H100", 1)
    read = config_of(
        "openai/gpt-oss-20b", "H100", 1, "mxfp4", config=MODELS / "openai--gpt-oss-20b.json"
    )
    assert read.model.expert_weight_bits == pytest.approx(4.25)
    assert weight_bytes_per_gpu(read) == pytest.approx(weight_bytes_per_gpu(catalogued))


@pytest.mark.parametrize(
    ("gpu", "fmt", "checkpoint", "gpus", "figure"),
    [
        ("H20", "fp8", "Qwen/Qwen3-8B-FP8", 1, "FP8 dense TFLOPS"),
        ("RTX 4090", "bf16", "Qwen/Qwen3-8B", 2, "intra-node link bandwidth"),
        ("MI325X", "int8", "Qwen/Qwen3-8B-W8A8", 1, "INT8 dense TOPS"),
    ],
)
def test_an_unknown_figure_the_simulation_needs_is_an_error_naming_it(
    gpu: str, fmt: str, checkpoint: str, gpus: int, figure: str
) -> None:
    settings = {"tensor-parallel-size": gpus, "max-model-len": 8192}
    config = config_of(checkpoint, gpu, gpus, fmt, settings)
    with pytest.raises(CatalogError, match=f"its {figure} is unknown.*hardware.gpu_spec"):
        simulate(config, WORK)


def test_one_gpu_of_unknown_link_simulates() -> None:
    config = config_of("Qwen/Qwen3-8B", "RTX 4090", 1, settings={"max-model-len": 8192})
    assert out_tok_s(config) > 0


def test_sparse_attention_indexer_and_top_k() -> None:
    raw = json.loads((MODELS / "deepseek-ai--DeepSeek-V3.2.json").read_text())
    assert raw["index_topk"] == 2048
    config = config_of(
        "deepseek-ai/DeepSeek-V3.2",
        "B200",
        8,
        "fp8",
        {"tensor-parallel-size": 8, "max-model-len": 65536},
        MODELS / "deepseek-ai--DeepSeek-V3.2.json",
    )
    step = StepModel(config, 8192)
    assert step.cap == 2048 and step.capped
    long_decode = step.step_s(32, 32, 32, 32 * 60000.0, 0.0, 0.0)
    dense = dataclasses.replace(
        config, model=dataclasses.replace(config.model, sparse_topk=0, index_head_dim=0)
    )
    assert long_decode < StepModel(dense, 8192).step_s(32, 32, 32, 32 * 60000.0, 0.0, 0.0)
    assert get_gpu("B200").fp4_compute and get_model("deepseek-ai/DeepSeek-V3.2").mla is not None

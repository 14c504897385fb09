"""Models from their own config.json: each family's layout, the catalogue's agreement with the
published configs, and refusals that name the config field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from runners.catalog import get_model
from runners.catalog.hf_config import model_from_config
from runners.catalog.specs import ModelSpec
from runners.errors import CatalogError

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"


def config(name: str) -> dict[str, Any]:
    loaded = json.loads((MODELS / f"{name}.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


def read(name: str, raw: dict[str, Any] | None = None) -> ModelSpec:
    return model_from_config(raw if raw is not None else config(name), name, (name,), name)


ARCHITECTURE = (
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "intermediate",
    "num_experts",
    "experts_per_token",
    "moe_intermediate",
    "vocab",
    "tied_embeddings",
    "max_position_embeddings",
    "shared_expert_intermediate",
    "dense_layers",
    "sliding_window",
    "sliding_layers",
    "attention_sinks",
    "mla",
    "model_type",
)


@pytest.mark.parametrize(
    ("catalogued", "published"),
    [
        ("Qwen3-235B-A22B", "Qwen--Qwen3-235B-A22B"),
        ("Qwen3-30B-A3B", "Qwen--Qwen3-30B-A3B"),
        ("Qwen3-32B", "Qwen--Qwen3-32B"),
        ("Qwen3-14B", "Qwen--Qwen3-14B"),
        ("Qwen3-8B", "Qwen--Qwen3-8B"),
        ("gpt-oss-20b", "openai--gpt-oss-20b"),
        ("gpt-oss-120b", "openai--gpt-oss-120b"),
        ("Llama-3.1-8B", "meta-llama--Llama-3.1-8B-Instruct"),
        ("Llama-3.1-70B", "meta-llama--Llama-3.1-70B-Instruct"),
    ],
)
def test_catalogue_entries_agree_with_their_published_config(
    catalogued: str, published: str
) -> None:
    entry, from_config = get_model(catalogued), read(published)
    for field in ARCHITECTURE:
        assert getattr(entry, field) == getattr(from_config, field), field


def test_deepseek_v3_is_mla_with_shared_experts_and_leading_dense_layers() -> None:
    model = read("deepseek-ai--DeepSeek-V3")
    assert model.mla is not None
    assert (model.mla.q_lora_rank, model.mla.kv_lora_rank) == (1536, 512)
    assert (model.mla.qk_nope_head_dim, model.mla.qk_rope_head_dim) == (128, 64)
    assert model.dense_layers == 3 and model.moe_layers == 58
    assert model.shared_expert_intermediate == 2048
    assert model.total_params / 1e9 == pytest.approx(671, rel=0.01)  # the published 671B
    assert model.active_params / 1e9 == pytest.approx(37.5, rel=0.03)  # "37B activated"
    # the KV cache holds the 512-wide latent and the 64-wide RoPE key, on every TP rank
    assert model.kv_bytes_per_token_per_gpu(1, 2) == 61 * 576 * 2
    assert model.kv_bytes_per_token_per_gpu(8, 2) == 61 * 576 * 2
    assert model.kv_replicated_over_tp
    # absorbed decode attends over the latent: far cheaper in bytes than 128 full heads
    assert model.kv_read_bytes_per_ctx(8, 2) == 576 * 2
    assert model.attention_flops_per_ctx(8, decode=True) == 16 * (2 * 576 + 2 * 512)
    assert model.attention_flops_per_ctx(8, decode=False) == 16 * (2 * 192 + 2 * 128)


def test_deepseek_v32_adds_the_sparse_attention_indexer() -> None:
    v3, v32 = read("deepseek-ai--DeepSeek-V3"), read("deepseek-ai--DeepSeek-V3.2")
    assert (v32.sparse_topk, v32.index_heads, v32.index_head_dim) == (2048, 64, 128)
    assert v3.sparse_topk == 0
    extra = v32.kv_bytes_per_token_per_gpu(8, 2) - v3.kv_bytes_per_token_per_gpu(8, 2)
    assert extra == 61 * (128 + 4)  # FP8 index keys and a scale per token and layer


def test_kimi_k2_and_deepseek_r1_are_read_as_mla() -> None:
    kimi = read("moonshotai--Kimi-K2-Instruct")
    assert kimi.mla is not None and kimi.num_experts == 384 and kimi.dense_layers == 1
    assert kimi.total_params / 1e12 == pytest.approx(1.03, rel=0.02)  # "1T total"
    r1 = read("deepseek-ai--DeepSeek-R1")
    assert r1.mla == read("deepseek-ai--DeepSeek-V3").mla


def test_mixtral_routes_two_of_eight_full_width_experts() -> None:
    model = read("mistralai--Mixtral-8x7B-Instruct-v0.1")
    assert (model.num_experts, model.experts_per_token) == (8, 2)
    assert model.moe_intermediate == 14336 and model.dense_layers == 0
    assert model.sliding_layers == 0  # "sliding_window": null
    assert model.total_params / 1e9 == pytest.approx(46.7, rel=0.01)
    assert model.active_params / 1e9 == pytest.approx(12.9, rel=0.01)


def test_gpt_oss_alternates_sliding_window_and_full_attention_with_sinks() -> None:
    model = read("openai--gpt-oss-120b")
    assert (model.sliding_window, model.sliding_layers, model.full_attention_layers) == (
        128,
        18,
        18,
    )
    assert model.attention_sinks
    assert model.total_params / 1e9 == pytest.approx(117, rel=0.01)


def test_phi4_and_llama_are_dense_gqa() -> None:
    phi = read("microsoft--phi-4")
    assert (phi.heads, phi.kv_heads, phi.head_dim, phi.is_moe) == (40, 10, 128, False)
    assert phi.total_params / 1e9 == pytest.approx(14.7, rel=0.01)
    llama = read("nvidia--Llama-3.1-70B-Instruct-FP8")
    assert llama.kv_heads_per_gpu(16) == 1  # KV heads replicate once TP exceeds 8


def test_gemma2_alternates_sliding_layers_and_mqa_reads_one_kv_head() -> None:
    raw = {
        "model_type": "gemma2",
        "num_hidden_layers": 26,
        "hidden_size": 2304,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "intermediate_size": 9216,
        "vocab_size": 256000,
        "max_position_embeddings": 8192,
        "sliding_window": 4096,
    }
    gemma = read("gemma-2-2b", raw)
    assert gemma.sliding_layers == 13 and gemma.head_dim == 256
    assert gemma.tied_embeddings  # the Gemma family ties its embeddings by default
    mqa = {k: v for k, v in raw.items() if k != "num_key_value_heads"} | {
        "model_type": "llama",
        "multi_query": True,
    }
    assert read("mqa", mqa).kv_heads == 1


def test_a_qwen_moe_with_dense_layers_and_a_shared_expert() -> None:
    raw = copy.deepcopy(config("Qwen--Qwen3-30B-A3B"))
    raw["mlp_only_layers"] = [0, 1]
    raw["shared_expert_intermediate_size"] = 512
    model = read("moe", raw)
    assert model.dense_layers == 2 and model.moe_layers == 46
    assert model.shared_expert_intermediate == 512


@pytest.mark.parametrize("name", ["Qwen--Qwen3.5-27B", "Qwen--Qwen3.5-35B-A3B"])
def test_hybrid_linear_attention_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(CatalogError, match=r"text_config\.layer_types: has 'linear_attention'"):
        read(name)


def test_hybrid_markers_without_layer_types_are_refused() -> None:
    raw = config("Qwen--Qwen3-8B") | {"full_attention_interval": 4}
    with pytest.raises(CatalogError, match="full_attention_interval"):
        read("next", raw)


def test_an_unknown_architecture_is_refused_naming_model_type() -> None:
    raw = config("Qwen--Qwen3-8B") | {"model_type": "rwkv7"}
    with pytest.raises(CatalogError, match=r"model_type: 'rwkv7' is not an architecture"):
        read("rwkv", raw)


@pytest.mark.parametrize("field", ["num_hidden_layers", "hidden_size", "vocab_size"])
def test_a_missing_required_field_is_named(field: str) -> None:
    raw = {k: v for k, v in config("Qwen--Qwen3-8B").items() if k != field}
    with pytest.raises(CatalogError, match=f"my.json: {field}: missing"):
        model_from_config(raw, "m", ("m",), "my.json")


def test_a_wrapper_without_its_text_config_is_refused() -> None:
    with pytest.raises(CatalogError, match="text_config: missing"):
        read("wrapper", {"model_type": "qwen3_5_moe"})

"""Model table: architecture facts from each model's Hugging Face config.json.

Every entry names its source. Derived quantities (parameter counts, KV bytes per token) are
computed by `ModelSpec` properties, never stored. Models outside this table come from their
own config.json (`runners.catalog.resolve`); tests check that the entries here agree with the
published config.json of each (gpt-oss: alternating 128-token sliding-window and full-attention
layers, with attention sinks).
"""

from __future__ import annotations

from runners.catalog.specs import ModelSpec

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="Qwen3-235B-A22B-Instruct-2507",
        hf_ids=(
            "Qwen/Qwen3-235B-A22B-Instruct-2507",
            "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
        ),
        layers=94,
        hidden=4096,
        heads=64,
        kv_heads=4,
        head_dim=128,
        intermediate=12288,
        num_experts=128,
        experts_per_token=8,
        moe_intermediate=1536,
        vocab=151936,
        tied_embeddings=False,
        max_position_embeddings=262144,
        source=(
            "HF Qwen/Qwen3-235B-A22B-Instruct-2507 config.json (transformers 4.51): same shapes "
            "as Qwen3-235B-A22B, max_position_embeddings 262144, rope_theta 5e6"
        ),
        model_type="qwen3_moe",
    ),
    ModelSpec(
        name="Qwen3-235B-A22B",
        hf_ids=(
            "Qwen/Qwen3-235B-A22B",
            "Qwen/Qwen3-235B-A22B-FP8",
        ),
        layers=94,
        hidden=4096,
        heads=64,
        kv_heads=4,
        head_dim=128,
        intermediate=12288,
        num_experts=128,
        experts_per_token=8,
        moe_intermediate=1536,
        vocab=151936,
        tied_embeddings=False,
        max_position_embeddings=40960,
        source=(
            "HF Qwen/Qwen3-235B-A22B config.json "
            "(transformers 4.51), every layer MoE, 40960 max positions (131072 with YaRN x4)"
        ),
        model_type="qwen3_moe",
    ),
    ModelSpec(
        name="Qwen3-30B-A3B",
        hf_ids=(
            "Qwen/Qwen3-30B-A3B",
            "Qwen/Qwen3-30B-A3B-FP8",
        ),
        layers=48,
        hidden=2048,
        heads=32,
        kv_heads=4,
        head_dim=128,
        intermediate=6144,
        num_experts=128,
        experts_per_token=8,
        moe_intermediate=768,
        vocab=151936,
        tied_embeddings=False,
        max_position_embeddings=40960,
        source=(
            "HF Qwen/Qwen3-30B-A3B config.json "
            "(transformers 4.51), every layer MoE (intermediate 6144 unused)"
        ),
        model_type="qwen3_moe",
    ),
    ModelSpec(
        name="Qwen3-32B",
        hf_ids=(
            "Qwen/Qwen3-32B",
            "Qwen/Qwen3-32B-FP8",
            "Qwen/Qwen3-32B-AWQ",
        ),
        layers=64,
        hidden=5120,
        heads=64,
        kv_heads=8,
        head_dim=128,
        intermediate=25600,
        num_experts=0,
        experts_per_token=0,
        moe_intermediate=0,
        vocab=151936,
        tied_embeddings=False,
        max_position_embeddings=40960,
        source=("HF Qwen/Qwen3-32B config.json (transformers 4.51), dense decoder"),
        model_type="qwen3",
    ),
    ModelSpec(
        name="Qwen3-14B",
        hf_ids=(
            "Qwen/Qwen3-14B",
            "Qwen/Qwen3-14B-FP8",
            "Qwen/Qwen3-14B-AWQ",
        ),
        layers=40,
        hidden=5120,
        heads=40,
        kv_heads=8,
        head_dim=128,
        intermediate=17408,
        num_experts=0,
        experts_per_token=0,
        moe_intermediate=0,
        vocab=151936,
        tied_embeddings=False,
        max_position_embeddings=40960,
        source=("HF Qwen/Qwen3-14B config.json (transformers 4.51), dense decoder"),
        model_type="qwen3",
    ),
    ModelSpec(
        name="Qwen3-8B",
        hf_ids=(
            "Qwen/Qwen3-8B",
            "Qwen/Qwen3-8B-FP8",
        ),
        layers=36,
        hidden=4096,
        heads=32,
        kv_heads=8,
        head_dim=128,
        intermediate=12288,
        num_experts=0,
        experts_per_token=0,
        moe_intermediate=0,
        vocab=151936,
        tied_embeddings=False,
        max_position_embeddings=40960,
        source=("HF Qwen/Qwen3-8B config.json (transformers 4.51), dense decoder"),
        model_type="qwen3",
    ),
    ModelSpec(
        name="gpt-oss-20b",
        hf_ids=("openai/gpt-oss-20b",),
        layers=24,
        hidden=2880,
        heads=64,
        kv_heads=8,
        head_dim=64,
        intermediate=2880,
        num_experts=32,
        experts_per_token=4,
        moe_intermediate=2880,
        vocab=201088,
        tied_embeddings=False,
        max_position_embeddings=131072,
        source=(
            "openai/gpt-oss-20b, from the public config.json: 24 layers, hidden 2880, 64 heads, "
            "8 KV heads, head_dim 64, 32 experts / 4 active; experts ship as MXFP4 "
            "(quantization_config.quant_method mxfp4: 4-bit E2M1 + one E8M0 scale per 32 = 4.25 "
            "bits), attention, router and embeddings BF16"
        ),
        expert_weight_bits=4.25,
        sliding_window=128,
        sliding_layers=12,
        attention_sinks=True,
        model_type="gpt_oss",
    ),
    ModelSpec(
        name="gpt-oss-120b",
        hf_ids=("openai/gpt-oss-120b",),
        layers=36,
        hidden=2880,
        heads=64,
        kv_heads=8,
        head_dim=64,
        intermediate=2880,
        num_experts=128,
        experts_per_token=4,
        moe_intermediate=2880,
        vocab=201088,
        tied_embeddings=False,
        max_position_embeddings=131072,
        source=(
            "openai/gpt-oss-120b, from the public config.json: 36 layers, hidden 2880, 64 heads, "
            "8 KV heads, head_dim 64, 128 experts / 4 active; experts ship as MXFP4 "
            "(quantization_config.quant_method mxfp4: 4-bit E2M1 + one E8M0 scale per 32 = 4.25 "
            "bits), attention, router and embeddings BF16"
        ),
        expert_weight_bits=4.25,
        sliding_window=128,
        sliding_layers=18,
        attention_sinks=True,
        model_type="gpt_oss",
    ),
    ModelSpec(
        name="Llama-3.1-8B",
        hf_ids=(
            "meta-llama/Llama-3.1-8B-Instruct",
            "meta-llama/Llama-3.1-8B",
            "meta-llama/Meta-Llama-3.1-8B-Instruct",
        ),
        layers=32,
        hidden=4096,
        heads=32,
        kv_heads=8,
        head_dim=128,
        intermediate=14336,
        num_experts=0,
        experts_per_token=0,
        moe_intermediate=0,
        vocab=128256,
        tied_embeddings=False,
        max_position_embeddings=131072,
        source=(
            "HF meta-llama/Llama-3.1-8B config.json (via aiconfigurator "
            "model_configs), rope_scaling llama3 to 131072 positions"
        ),
        model_type="llama",
    ),
    ModelSpec(
        name="Llama-3.1-70B",
        hf_ids=(
            "meta-llama/Llama-3.1-70B-Instruct",
            "meta-llama/Llama-3.1-70B",
            "meta-llama/Meta-Llama-3.1-70B-Instruct",
        ),
        layers=80,
        hidden=8192,
        heads=64,
        kv_heads=8,
        head_dim=128,
        intermediate=28672,
        num_experts=0,
        experts_per_token=0,
        moe_intermediate=0,
        vocab=128256,
        tied_embeddings=False,
        max_position_embeddings=131072,
        source=(
            "HF meta-llama/Llama-3.1-70B config.json (via aiconfigurator "
            "model_configs), rope_scaling llama3 to 131072 positions"
        ),
        model_type="llama",
    ),
    ModelSpec(
        name="tiny-qwen3-moe",
        hf_ids=("models/tiny-qwen3-moe",),
        layers=4,
        hidden=256,
        heads=4,
        kv_heads=2,
        head_dim=64,
        intermediate=512,
        num_experts=8,
        experts_per_token=2,
        moe_intermediate=128,
        vocab=8192,
        tied_embeddings=False,
        max_position_embeddings=4096,
        source="scripts/make_tiny_model.py: random-weight Qwen3-MoE built locally, no download",
        model_type="qwen3_moe",
    ),
    ModelSpec(
        name="tiny-qwen3",
        hf_ids=("models/tiny-qwen3",),
        layers=4,
        hidden=256,
        heads=4,
        kv_heads=2,
        head_dim=64,
        intermediate=512,
        num_experts=0,
        experts_per_token=0,
        moe_intermediate=0,
        vocab=8192,
        tied_embeddings=False,
        max_position_embeddings=4096,
        source="scripts/make_tiny_model.py: random-weight Qwen3 built locally, no download",
        model_type="qwen3",
    ),
)

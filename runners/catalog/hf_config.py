"""A model's own config.json, read into a `ModelSpec` (the architecture the simulator models).

Place in the data flow: `runners.catalog.resolve` finds a checkpoint's config.json (a path the
user gave, a models folder, the local Hugging Face cache) and calls `model_from_config`; the
result is registered in the catalogue under the checkpoint's name. Decoders of these families
are read: dense grouped-query / multi-query attention (Llama, Mistral, Qwen2/3, Gemma 1-3,
Phi-3/4), mixtures of experts (Mixtral, Qwen2/3-MoE, gpt-oss with its sliding-window layers
and attention sinks, GLM-4-MoE with shared experts and leading dense layers) and multi-head
latent attention (DeepSeek-V2/V3/R1/V3.2 with its sparse-attention indexer, Kimi-K2). A
multimodal wrapper's ``text_config`` is read as the model. A layer kind the simulator cannot
model (linear attention, state-space mixers) and an unknown ``model_type`` are refused with a
`CatalogError` naming the config field; so is a missing required field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runners.catalog.specs import MlaDims, ModelSpec
from runners.errors import CatalogError

DENSE_TYPES = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "glm4"}
)
MOE_TYPES = frozenset({"mixtral", "qwen2_moe", "qwen3_moe", "gpt_oss", "glm4_moe"})
MLA_TYPES = frozenset({"deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2"})
MODEL_TYPES = DENSE_TYPES | MOE_TYPES | MLA_TYPES
# Wrappers whose text model lives under text_config.
WRAPPERS = frozenset({"gemma3", "qwen3_5", "qwen3_5_moe", "mistral3", "llava"})
ATTENTION_LAYERS = frozenset({"full_attention", "sliding_attention"})
# Keys that announce layers other than softmax attention (hybrid linear attention, SSMs).
HYBRID_KEYS = (
    "full_attention_interval",
    "linear_num_value_heads",
    "hybrid_override_pattern",
    "layers_block_type",
    "attn_layer_indices",
    "ssm_cfg",
    "mamba_d_state",
)
GEMMA_TYPES = frozenset({"gemma", "gemma2", "gemma3_text"})


class _Fields:
    """Typed reads of one config mapping, each failure naming the file and field."""

    def __init__(self, raw: Mapping[str, Any], where: str, prefix: str) -> None:
        self.raw = raw
        self.where = where
        self.prefix = prefix

    def path(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, key: str, problem: str) -> CatalogError:
        return CatalogError(f"{self.where}: {self.path(key)}: {problem}")

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.raw.get(key)
        if value is None:
            if default is not None:
                return default
            raise self.error(
                key,
                "missing; the simulator needs it (copy the model's complete config.json from "
                "its Hugging Face repository)",
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(key, f"must be a whole number >= 0, got {value!r}")
        return value

    def first_int(self, keys: tuple[str, ...], default: int | None = None) -> int:
        for key in keys:
            if self.has(key):
                return self.integer(key)
        if default is not None:
            return default
        raise self.error(
            keys[0],
            f"missing (also looked for {', '.join(keys[1:]) or 'nothing else'}); copy the "
            "model's complete config.json from its Hugging Face repository",
        )


def _text_config(config: Mapping[str, Any], where: str) -> tuple[Mapping[str, Any], str]:
    """The text decoder's mapping and its field prefix (``text_config.`` for wrappers)."""
    text = config.get("text_config")
    if isinstance(text, Mapping):
        return text, "text_config."
    model_type = config.get("model_type")
    if model_type in WRAPPERS:
        raise CatalogError(
            f"{where}: text_config: missing, but model_type {model_type!r} keeps its text "
            "model there; copy the complete config.json"
        )
    return config, ""


def _refuse_hybrid(fields: _Fields) -> None:
    layer_types = fields.raw.get("layer_types")
    if isinstance(layer_types, list):
        other = sorted({str(t) for t in layer_types} - ATTENTION_LAYERS)
        if other:
            raise fields.error(
                "layer_types",
                f"has {', '.join(repr(t) for t in other)} layers (hybrid linear attention or "
                "state-space layers), which the simulator cannot model yet; only "
                "full_attention and sliding_attention layers are modelled",
            )
    for key in HYBRID_KEYS:
        if key in fields.raw:
            raise fields.error(
                key,
                "announces layers other than softmax attention (hybrid linear attention or "
                "state-space layers), which the simulator cannot model yet",
            )


def _model_type(fields: _Fields) -> str:
    model_type = fields.raw.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise fields.error(
            "model_type", "missing; the simulator needs it to know the decoder's layout"
        )
    if model_type not in MODEL_TYPES:
        raise fields.error(
            "model_type",
            f"{model_type!r} is not an architecture the simulator models (known: "
            f"{', '.join(sorted(MODEL_TYPES))}); give the GPU and model by a known "
            "architecture, or run it with a real runner",
        )
    return model_type


def _sliding(fields: _Fields, model_type: str, layers: int) -> tuple[int, int]:
    """(sliding_window, sliding_layers): from layer_types when given, else each family's
    rule (Mistral: every layer when a window is set; Gemma 2: every other layer; Gemma 3:
    all but every `sliding_window_pattern`-th; Qwen: layers from `max_window_layers` on when
    `use_sliding_window`)."""
    window = fields.raw.get("sliding_window")
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return 0, 0
    layer_types = fields.raw.get("layer_types")
    if isinstance(layer_types, list):
        if len(layer_types) != layers:
            raise fields.error(
                "layer_types", f"lists {len(layer_types)} layers, num_hidden_layers is {layers}"
            )
        return window, sum(1 for t in layer_types if t == "sliding_attention")
    if model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        if not fields.raw.get("use_sliding_window"):
            return 0, 0
        first = fields.integer("max_window_layers", layers)
        return window, max(0, layers - first)
    if model_type == "gemma2":
        return window, (layers + 1) // 2
    if model_type == "gemma3_text":
        pattern = fields.integer("sliding_window_pattern", 6)
        return window, layers - layers // pattern if pattern else 0
    if model_type in ("mistral", "mixtral"):
        return window, layers
    return 0, 0


def _moe(fields: _Fields, model_type: str, layers: int) -> dict[str, int]:
    """Routed experts, their width, the shared expert and the layers that keep a dense MLP."""
    experts = fields.first_int(("num_local_experts", "num_experts", "n_routed_experts"), 0)
    if not experts:
        return {}
    top_k = fields.first_int(("num_experts_per_tok", "experts_per_token"))
    width = fields.first_int(("moe_intermediate_size", "intermediate_size"))
    shared = 0
    if fields.has("n_shared_experts"):
        shared = fields.integer("n_shared_experts") * width
    elif fields.has("shared_expert_intermediate_size"):
        shared = fields.integer("shared_expert_intermediate_size")
    dense = fields.integer("first_k_dense_replace", 0)
    only_dense = fields.raw.get("mlp_only_layers") or []
    if isinstance(only_dense, list):
        dense += len({int(i) for i in only_dense if int(i) >= dense})
    step = fields.integer("decoder_sparse_step", 1)
    if step > 1:
        dense = max(dense, layers - layers // step)
    return {
        "num_experts": experts,
        "experts_per_token": top_k,
        "moe_intermediate": width,
        "shared_expert_intermediate": shared,
        "dense_layers": min(dense, layers),
    }


def _mla(fields: _Fields) -> MlaDims:
    return MlaDims(
        q_lora_rank=fields.integer("q_lora_rank", 0),
        kv_lora_rank=fields.integer("kv_lora_rank"),
        qk_nope_head_dim=fields.integer("qk_nope_head_dim"),
        qk_rope_head_dim=fields.integer("qk_rope_head_dim"),
        v_head_dim=fields.integer("v_head_dim"),
    )


def model_from_config(
    config: Mapping[str, Any], name: str, hf_ids: tuple[str, ...], where: str
) -> ModelSpec:
    """The `ModelSpec` of a config.json; `where` names the file in every error."""
    if not isinstance(config, Mapping):
        raise CatalogError(f"{where}: must hold a JSON object (a model's config.json)")
    raw, prefix = _text_config(config, where)
    fields = _Fields(raw, where, prefix)
    _refuse_hybrid(fields)
    model_type = _model_type(fields)
    layers = fields.first_int(("num_hidden_layers", "n_layer", "num_layers"))
    hidden = fields.first_int(("hidden_size", "n_embd", "d_model"))
    heads = fields.first_int(("num_attention_heads", "n_head"))
    if heads == 0 or layers == 0 or hidden == 0:
        raise fields.error(
            "num_attention_heads", "layers, hidden size and heads must all be above 0"
        )
    kv_heads = fields.integer("num_key_value_heads", 1 if raw.get("multi_query") else heads)
    mla = _mla(fields) if model_type in MLA_TYPES else None
    head_dim = mla.qk_head_dim if mla is not None else fields.integer("head_dim", hidden // heads)
    moe = _moe(fields, model_type, layers)
    intermediate = fields.integer("intermediate_size", moe.get("moe_intermediate", 0))
    if not moe and intermediate == 0:
        fields.integer("intermediate_size")  # raises: a dense MLP needs its width
    window, sliding = _sliding(fields, model_type, layers)
    tied_default = model_type in GEMMA_TYPES
    tied = raw.get("tie_word_embeddings", config.get("tie_word_embeddings", tied_default))
    return ModelSpec(
        name=name,
        hf_ids=hf_ids,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=intermediate,
        num_experts=moe.get("num_experts", 0),
        experts_per_token=moe.get("experts_per_token", 0),
        moe_intermediate=moe.get("moe_intermediate", 0),
        vocab=fields.integer("vocab_size"),
        tied_embeddings=bool(tied),
        max_position_embeddings=fields.integer("max_position_embeddings"),
        source=f"config.json at {where}",
        shared_expert_intermediate=moe.get("shared_expert_intermediate", 0),
        dense_layers=moe.get("dense_layers", 0),
        sliding_window=window,
        sliding_layers=sliding,
        attention_sinks=model_type == "gpt_oss",
        mla=mla,
        sparse_topk=fields.integer("index_topk", 0),
        index_heads=fields.integer("index_n_heads", 0),
        index_head_dim=fields.integer("index_head_dim", 0),
        model_type=model_type,
    )


__all__ = ["MODEL_TYPES", "model_from_config"]

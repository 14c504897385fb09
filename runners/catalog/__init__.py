"""Facts about hardware and models: the physics inputs of the simulator and of the engine adapters.

`GpuSpec` and `ModelSpec` are plain frozen dataclasses; the tables live in `gpus.py` and
`models.py`, one entry per GPU or model with the public source of every number. `get_gpu` and
`get_model` are the only lookups; an unknown name raises `CatalogError` listing what is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from runners.errors import CatalogError

GIB = 1024**3


@dataclass(frozen=True)
class GpuSpec:
    """Peak dense tensor-core rates, memory and intra-node link of one GPU model."""

    name: str
    aliases: tuple[str, ...]
    bf16_tflops: float
    fp8_tflops: float | None
    memory_gib_usable: float
    hbm_tb_s: float
    link_gb_s: float
    link_kind: str
    source: str

    @property
    def has_fp8_compute(self) -> bool:
        return self.fp8_tflops is not None

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib_usable * GIB


@dataclass(frozen=True)
class ModelSpec:
    """Architecture facts from the model's config.json (dense or MoE decoder)."""

    name: str
    hf_ids: tuple[str, ...]
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    num_experts: int
    experts_per_token: int
    moe_intermediate: int
    vocab: int
    tied_embeddings: bool
    max_position_embeddings: int
    source: str
    expert_weight_bits: float = 0.0
    """Bits per routed-expert weight when the checkpoint ships experts pre-quantized in a
    format of its own (gpt-oss: MXFP4, 4 bits + one 8-bit scale per 32 = 4.25); 0 = the
    checkpoint's weight dtype."""

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def attention_params_per_layer(self) -> int:
        d = self.head_dim
        return self.hidden * (self.heads + 2 * self.kv_heads) * d + self.heads * d * self.hidden

    @property
    def expert_params_per_layer(self) -> int:
        """All routed experts of one layer (gate, up and down projections)."""
        return self.num_experts * 3 * self.hidden * self.moe_intermediate

    @property
    def dense_mlp_params_per_layer(self) -> int:
        if self.is_moe:
            return self.hidden * self.num_experts  # the router
        return 3 * self.hidden * self.intermediate

    @property
    def embedding_params(self) -> int:
        copies = 1 if self.tied_embeddings else 2
        return copies * self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        per_layer = (
            self.attention_params_per_layer
            + self.dense_mlp_params_per_layer
            + self.expert_params_per_layer
        )
        return self.layers * per_layer + self.embedding_params

    @property
    def active_params(self) -> int:
        active_experts = (
            self.expert_params_per_layer * self.experts_per_token // self.num_experts
            if self.is_moe
            else 0
        )
        per_layer = (
            self.attention_params_per_layer + self.dense_mlp_params_per_layer + active_experts
        )
        return self.layers * per_layer + self.embedding_params

    def kv_heads_per_gpu(self, tensor_parallel: int) -> int:
        """KV heads each TP rank stores; heads are replicated once TP exceeds their number."""
        return max(1, self.kv_heads // tensor_parallel)

    def kv_bytes_per_token_per_gpu(self, tensor_parallel: int, kv_bytes: int) -> int:
        return 2 * self.layers * self.kv_heads_per_gpu(tensor_parallel) * self.head_dim * kv_bytes


def _index(entries: tuple[GpuSpec, ...] | tuple[ModelSpec, ...]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for entry in entries:
        names = (entry.name, *(entry.aliases if isinstance(entry, GpuSpec) else entry.hf_ids))
        for name in names:
            keys[name.lower()] = entry.name
    return keys


def get_gpu(name: str) -> GpuSpec:
    from runners.catalog.gpus import GPUS

    by_name = {gpu.name: gpu for gpu in GPUS}
    key = _index(GPUS).get(name.lower())
    if key is None:
        known = ", ".join(gpu.name for gpu in GPUS)
        raise CatalogError(f"unknown GPU {name!r}; the catalogue knows: {known}")
    return by_name[key]


def get_model(name: str) -> ModelSpec:
    from runners.catalog.models import MODELS

    by_name = {model.name: model for model in MODELS}
    key = _index(MODELS).get(name.lower())
    if key is None:
        known = ", ".join(model.name for model in MODELS)
        raise CatalogError(f"unknown model {name!r}; the catalogue knows: {known}")
    return by_name[key]


def known_gpus() -> list[str]:
    from runners.catalog.gpus import GPUS

    return [gpu.name for gpu in GPUS]


def known_models() -> list[str]:
    from runners.catalog.models import MODELS

    return [model.name for model in MODELS]

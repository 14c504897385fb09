"""The value types of the catalogue: `GpuSpec` (with its traits) and `ModelSpec`.

Place in the data flow: the tables in `gpus.py` and `models.py`, the config.json reader
(`hf_config.py`) and a space file's inline GPU spec build these types, and `runners.catalog`
looks entries up by name. Engines, pre-flight and the simulator read the fields (never the
name) to decide what a device or model supports. A figure no source gives is None ("unknown",
never zero); `GpuSpec.unknown_figures` says what each unknown one limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from runners.errors import CatalogError

GIB = 1024**3


class Architecture(StrEnum):
    """The architecture generation of a device; kernel and backend support depend on it."""

    AMPERE = "ampere"  # NVIDIA SM80
    ADA = "ada"  # NVIDIA SM89
    HOPPER = "hopper"  # NVIDIA SM90
    BLACKWELL = "blackwell"  # NVIDIA SM100
    CDNA3 = "cdna3"  # AMD Instinct MI300
    DAVINCI = "davinci"  # Huawei Ascend 910B
    X86_CPU = "x86-cpu"  # a CPU socket (vLLM's CPU backend)


Vendor = Literal["nvidia", "amd", "huawei", "intel"]
DeviceKind = Literal["gpu", "npu", "cpu"]
Interconnect = Literal["nvlink", "pcie", "infinity-fabric", "hccs", "none"]


@dataclass(frozen=True)
class ArchitectureTraits:
    """What every device of one architecture generation shares: the vendor, the device kind
    and its visibility variable, the NVIDIA compute capability of its data-centre part, and
    whether its tensor cores compute in FP8 / FP4, and the Kubernetes resource its vendor's
    device plugin advertises (an inline GPU spec takes these from its `architecture`)."""

    vendor: Vendor
    device: DeviceKind
    visible_devices_env: str
    compute_capability: tuple[int, int] | None
    fp8_compute: bool
    fp4_compute: bool
    kubernetes_resource: str


ARCHITECTURE_TRAITS: dict[Architecture, ArchitectureTraits] = {
    Architecture.AMPERE: ArchitectureTraits(
        "nvidia", "gpu", "CUDA_VISIBLE_DEVICES", (8, 0), False, False, "nvidia.com/gpu"
    ),
    Architecture.ADA: ArchitectureTraits(
        "nvidia", "gpu", "CUDA_VISIBLE_DEVICES", (8, 9), True, False, "nvidia.com/gpu"
    ),
    Architecture.HOPPER: ArchitectureTraits(
        "nvidia", "gpu", "CUDA_VISIBLE_DEVICES", (9, 0), True, False, "nvidia.com/gpu"
    ),
    Architecture.BLACKWELL: ArchitectureTraits(
        "nvidia", "gpu", "CUDA_VISIBLE_DEVICES", (10, 0), True, True, "nvidia.com/gpu"
    ),
    Architecture.CDNA3: ArchitectureTraits(
        "amd", "gpu", "CUDA_VISIBLE_DEVICES", None, True, False, "amd.com/gpu"
    ),
    Architecture.DAVINCI: ArchitectureTraits(
        "huawei", "npu", "ASCEND_RT_VISIBLE_DEVICES", None, False, False, "huawei.com/Ascend910"
    ),
    Architecture.X86_CPU: ArchitectureTraits(
        "intel", "cpu", "CUDA_VISIBLE_DEVICES", None, False, False, ""
    ),
}


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator model: peak dense rates, memory, intra-node link, and its traits.

    The traits (`vendor`, `architecture`, `compute_capability` for NVIDIA parts, FP8 and FP4
    tensor-core support, `interconnect`, `device` kind, the environment variable that selects
    visible devices and the `kubernetes_resource` a pod requests them by) are what engines, the
    simulator and the exported deployments ask; nothing is inferred from the name. A rate is
    given only where the hardware computes in that format (`fp8_tflops` needs `fp8_compute`,
    `fp4_tflops` needs `fp4_compute`); None means no source gives it. `link_gb_s` (intra-node,
    per GPU and direction) may be unknown too; `inter_node_gb_s` is the per-GPU share of the
    node's network (one direction) and `link_domain_gpus` how many GPUs the intra-node link
    reaches (8 for an HGX board, 72 for an NVL72 rack). `typical_gpus_per_node` is the usual
    node size, when a source states it.
    """

    name: str
    aliases: tuple[str, ...]
    bf16_tflops: float
    fp8_tflops: float | None
    memory_gib_usable: float
    hbm_tb_s: float
    link_gb_s: float | None
    link_kind: str
    source: str
    vendor: Vendor
    architecture: Architecture
    device: DeviceKind
    interconnect: Interconnect
    visible_devices_env: str
    kubernetes_resource: str
    fp8_compute: bool
    fp4_compute: bool = False
    compute_capability: tuple[int, int] | None = None
    fp4_tflops: float | None = None
    int8_tops: float | None = None
    inter_node_gb_s: float | None = None
    inter_node_kind: str = ""
    link_domain_gpus: int | None = None
    typical_gpus_per_node: int | None = None

    def __post_init__(self) -> None:
        if self.fp8_tflops is not None and not self.fp8_compute:
            raise CatalogError(
                f"GPU {self.name!r}: an FP8 rate ({self.fp8_tflops}) without FP8 compute; give "
                "fp8_tflops only for a device whose tensor cores compute in FP8"
            )
        if self.fp4_tflops is not None and not self.fp4_compute:
            raise CatalogError(
                f"GPU {self.name!r}: an FP4 rate ({self.fp4_tflops}) without FP4 compute; give "
                "fp4_tflops only for a device whose tensor cores compute in FP4"
            )
        if (self.vendor == "nvidia") != (self.compute_capability is not None):
            raise CatalogError(
                f"GPU {self.name!r}: an NVIDIA part needs its compute_capability (and only "
                "NVIDIA parts have one)"
            )
        if (self.device == "cpu") != (self.kubernetes_resource == ""):
            raise CatalogError(
                f"GPU {self.name!r}: a device needs the Kubernetes resource its device plugin "
                "advertises (e.g. nvidia.com/gpu), and a CPU has none"
            )
        for label, value in (
            ("bf16_tflops", self.bf16_tflops),
            ("memory_gib_usable", self.memory_gib_usable),
            ("hbm_tb_s", self.hbm_tb_s),
            ("fp8_tflops", self.fp8_tflops),
            ("fp4_tflops", self.fp4_tflops),
            ("int8_tops", self.int8_tops),
            ("link_gb_s", self.link_gb_s),
            ("inter_node_gb_s", self.inter_node_gb_s),
        ):
            if value is not None and not value > 0:
                raise CatalogError(
                    f"GPU {self.name!r}: {label} must be above 0, got {value}; leave a figure "
                    "out when it is unknown"
                )

    def unknown_figures(self) -> tuple[str, ...]:
        """Each figure no source gives, with what its absence limits (empty: all known)."""
        found: list[str] = []
        if self.fp8_compute and self.fp8_tflops is None:
            found.append(
                "FP8 dense TFLOPS unknown: FP8 and INT8-activation checkpoints cannot be "
                "simulated on it"
            )
        if self.fp4_compute and self.fp4_tflops is None:
            found.append("FP4 dense TFLOPS unknown: NVFP4 checkpoints cannot be simulated on it")
        if self.int8_tops is None:
            found.append(
                "INT8 dense TOPS unknown: W8A8 INT8 checkpoints cannot be simulated on it"
            )
        if self.link_gb_s is None:
            found.append(
                "intra-node link bandwidth unknown: instances of more than one GPU cannot be "
                "simulated on it"
            )
        if self.inter_node_gb_s is None:
            found.append("inter-node bandwidth unknown: instances cannot span nodes of it")
        return tuple(found)

    @property
    def has_fp8_compute(self) -> bool:
        return self.fp8_compute

    @property
    def is_cpu(self) -> bool:
        """A CPU socket standing in for a device (vLLM's CPU backend)."""
        return self.device == "cpu"

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib_usable * GIB


@dataclass(frozen=True)
class MlaDims:
    """Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): queries optionally through a
    low-rank `q_lora_rank` (0: a full query projection), keys and values through one shared
    latent of `kv_lora_rank` plus a decoupled RoPE key of `qk_rope_head_dim`. The KV cache holds
    that latent and RoPE key per token and layer (the same on every TP rank)."""

    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def latent_width(self) -> int:
        """Values cached per token and layer: the KV latent and the RoPE key."""
        return self.kv_lora_rank + self.qk_rope_head_dim


@dataclass(frozen=True)
class ModelSpec:
    """Architecture facts from the model's config.json (a dense or MoE decoder).

    Attention is grouped-query (`heads`, `kv_heads`, `head_dim`) or, when `mla` is set,
    multi-head latent attention. A MoE model (`num_experts` > 0) may keep a dense MLP of
    `intermediate` in its first `dense_layers` layers, and an always-active shared expert of
    total width `shared_expert_intermediate` beside the routed ones. `sliding_layers` of the
    layers attend only to the last `sliding_window` tokens (gpt-oss alternates them with full
    attention; its `attention_sinks` add one learned logit per head, no cost worth modelling).
    `sparse_topk` > 0 is DeepSeek sparse attention (V3.2): each query attends to that many
    tokens picked by an indexer of `index_heads` x `index_head_dim` that scores every token.
    """

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
    shared_expert_intermediate: int = 0
    dense_layers: int = 0
    sliding_window: int = 0
    sliding_layers: int = 0
    attention_sinks: bool = False
    mla: MlaDims | None = None
    sparse_topk: int = 0
    index_heads: int = 0
    index_head_dim: int = 0
    model_type: str = ""
    """config.json's model_type (for messages; behaviour never depends on it)."""

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is the mixture of experts."""
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def full_attention_layers(self) -> int:
        return self.layers - self.sliding_layers

    @property
    def attention_params_per_layer(self) -> int:
        if self.mla is not None:
            mla, h = self.mla, self.hidden
            q = (
                h * mla.q_lora_rank + mla.q_lora_rank * self.heads * mla.qk_head_dim
                if mla.q_lora_rank
                else h * self.heads * mla.qk_head_dim
            )
            kv = h * mla.latent_width + mla.kv_lora_rank * self.heads * (
                mla.qk_nope_head_dim + mla.v_head_dim
            )
            return q + kv + self.heads * mla.v_head_dim * h
        d = self.head_dim
        return self.hidden * (self.heads + 2 * self.kv_heads) * d + self.heads * d * self.hidden

    @property
    def expert_params_per_layer(self) -> int:
        """All routed experts of one MoE layer (gate, up and down projections)."""
        return self.num_experts * 3 * self.hidden * self.moe_intermediate

    @property
    def shared_expert_params_per_layer(self) -> int:
        return 3 * self.hidden * self.shared_expert_intermediate

    @property
    def dense_mlp_params_per_layer(self) -> int:
        """The MLP weights outside the routed experts: the router (and shared expert) of a MoE
        layer, or the dense MLP."""
        if self.is_moe:
            return self.hidden * self.num_experts + self.shared_expert_params_per_layer
        return 3 * self.hidden * self.intermediate

    @property
    def embedding_params(self) -> int:
        copies = 1 if self.tied_embeddings else 2
        return copies * self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        return self._params(self.expert_params_per_layer)

    @property
    def active_params(self) -> int:
        active_experts = (
            self.expert_params_per_layer * self.experts_per_token // self.num_experts
            if self.is_moe
            else 0
        )
        return self._params(active_experts)

    def _params(self, experts_per_layer: int) -> int:
        per_layer = self.attention_params_per_layer + self.dense_mlp_params_per_layer
        if not self.dense_layers:
            return self.layers * (per_layer + experts_per_layer) + self.embedding_params
        dense = self.attention_params_per_layer + 3 * self.hidden * self.intermediate
        moe = self.moe_layers * (per_layer + experts_per_layer)
        return moe + self.dense_layers * dense + self.embedding_params

    def kv_heads_per_gpu(self, tensor_parallel: int) -> int:
        """KV heads each TP rank stores; heads are replicated once TP exceeds their number
        (an MLA latent is one head on every rank)."""
        if self.mla is not None:
            return 1
        return max(1, self.kv_heads // tensor_parallel)

    def kv_bytes_per_token_per_gpu(self, tensor_parallel: int, kv_bytes: int) -> int:
        if self.mla is not None:
            latent = self.layers * self.mla.latent_width * kv_bytes
            return latent + self.layers * self.index_key_bytes
        return 2 * self.layers * self.kv_heads_per_gpu(tensor_parallel) * self.head_dim * kv_bytes

    @property
    def index_key_bytes(self) -> int:
        """Bytes per token and layer of a sparse-attention indexer's key cache (FP8 keys and
        one FP32 scale), 0 without one."""
        return self.index_head_dim + 4 if self.index_head_dim else 0

    @property
    def kv_replicated_over_tp(self) -> bool:
        """Every TP rank caches the whole KV of its sequences (MLA), so only attention data
        parallelism divides the KV cache; with grouped-query attention TP splits the heads."""
        return self.mla is not None

    def attention_flops_per_ctx(self, tensor_parallel: int, decode: bool) -> float:
        """Attention FLOPs per (query token, context token) pair and layer on one TP rank.

        MLA decodes with the up-projections absorbed (scores over the latent and RoPE key,
        values over the latent) and prefills with them expanded (per-head keys and values).
        """
        if self.mla is None:
            return 4.0 * (self.heads / tensor_parallel) * self.head_dim
        mla = self.mla
        if decode:
            per_head = 2.0 * mla.latent_width + 2.0 * mla.kv_lora_rank
        else:
            per_head = 2.0 * mla.qk_head_dim + 2.0 * mla.v_head_dim
        return (self.heads / tensor_parallel) * per_head

    def kv_read_bytes_per_ctx(self, tensor_parallel: int, kv_bytes: int) -> float:
        """KV bytes one TP rank reads per context token and layer when it attends."""
        if self.mla is not None:
            return float(self.mla.latent_width * kv_bytes)
        return 2.0 * self.kv_heads_per_gpu(tensor_parallel) * self.head_dim * kv_bytes

"""The value types of the catalogue: `GpuSpec` (with its traits) and `ModelSpec`.

Place in the data flow: the tables in `gpus.py` and `models.py` are built from these types, and
`runners.catalog` looks entries up by name. Engines, pre-flight and the simulator read the
fields (never the name) to decide what a device or model supports.
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
class GpuSpec:
    """One accelerator model: peak dense rates, memory, intra-node link, and its traits.

    The traits (`vendor`, `architecture`, `compute_capability` for NVIDIA parts, FP8 and FP4
    tensor-core support, `interconnect`, `device` kind, the environment variable that
    selects visible devices and the `kubernetes_resource` a pod requests them by) are what
    engines, the simulator and the exported deployments ask; nothing is inferred from the name.
    `fp8_compute` must agree with `fp8_tflops` (a rate exists exactly when the hardware
    computes in FP8).
    """

    name: str
    aliases: tuple[str, ...]
    bf16_tflops: float
    fp8_tflops: float | None
    memory_gib_usable: float
    hbm_tb_s: float
    link_gb_s: float
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

    def __post_init__(self) -> None:
        if self.fp8_compute != (self.fp8_tflops is not None):
            raise CatalogError(
                f"GPU {self.name!r}: fp8_compute={self.fp8_compute} contradicts "
                f"fp8_tflops={self.fp8_tflops}; give an FP8 rate exactly when FP8 is computed"
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

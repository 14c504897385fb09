"""The space-file sections that name catalogue things: the model with its checkpoints, an
inline GPU, and the network between a node group's nodes.

Place in the data flow: part of the pydantic models of the space file (`optimizer.spec.models`
builds `StudySpec` from these); `optimizer.spec.resolve` resolves them against the catalogue.
A field added here after studies were first stored is dropped from a section's dump while
unset, so the study identity (a hash of the dumps) of older studies does not change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from runners.catalog import QuantFormat


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def drop_unset(data: dict[str, object], fields: tuple[str, ...]) -> dict[str, object]:
    """A section's dump without the optional fields added after studies were first stored,
    when unset: the study identity hashes these dumps, and old studies must still resume."""
    return {k: v for k, v in data.items() if not (k in fields and v is None)}


class VariantSection(Strict):
    """A checkpoint with its own config.json (a file, or a local model folder in HF layout)."""

    checkpoint: str = Field(min_length=1)
    config: str | None = Field(default=None, min_length=1)


class ModelSection(Strict):
    name: str = Field(description="catalogue name, alias or checkpoint id of the model")
    config: str | None = Field(
        default=None, min_length=1, description="the model's config.json or HF-layout folder"
    )
    variants: dict[QuantFormat, str | VariantSection] = Field(
        min_length=1, description="checkpoint per format; more than one makes it searched"
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        return drop_unset(handler(self), ("config",))

    def checkpoint(self, variant: str) -> str:
        """The checkpoint id of `variant` (a key of `variants`)."""
        value = self.variants[variant]  # type: ignore[index]
        return value if isinstance(value, str) else value.checkpoint

    def variant_config(self, variant: str) -> str | None:
        value = self.variants[variant]  # type: ignore[index]
        return None if isinstance(value, str) else value.config


class NetworkSection(Strict):
    """The network between a group's nodes: `nics` per node of `gbit_s` each (e.g. 8 x 400
    Gb/s InfiniBand)."""

    kind: Literal["infiniband", "roce", "ethernet", "nvlink"] = "infiniband"
    nics: int = Field(ge=1, le=64)
    gbit_s: float

    @field_validator("gbit_s")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"must be above 0 (Gb/s per NIC), got {value}")
        return value

    def gb_s_per_gpu(self, gpus_per_node: int) -> float:
        """Each GPU's share of the node's network, GB/s in one direction."""
        return self.nics * self.gbit_s / 8.0 / gpus_per_node


ArchitectureName = Literal["ampere", "ada", "hopper", "blackwell", "cdna3", "davinci"]
InterconnectName = Literal["nvlink", "pcie", "infinity-fabric", "hccs", "none"]
GPU_FIGURES = (
    ("memory_gib", "GiB"),
    ("hbm_tb_s", "TB/s"),
    ("bf16_tflops", "TFLOPS"),
    ("fp8_tflops", "TFLOPS"),
    ("fp4_tflops", "TFLOPS"),
    ("int8_tops", "TOPS"),
    ("link_gb_s", "GB/s per GPU and direction"),
    ("inter_node_gb_s", "GB/s per GPU and direction"),
)


class GpuSpecSection(Strict):
    """A GPU outside the catalogue, described by its figures (dense peaks, no sparsity). The
    architecture gives its traits and the simulator efficiencies carried over from its
    generation; a figure left out is unknown (what that limits is said where it matters)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_. -]*$")
    architecture: ArchitectureName
    memory_gib: float
    hbm_tb_s: float
    bf16_tflops: float
    fp8_tflops: float | None = None
    fp4_tflops: float | None = None
    int8_tops: float | None = None
    interconnect: InterconnectName
    link_gb_s: float | None = None
    inter_node_gb_s: float | None = None
    compute_capability: str | None = Field(default=None, pattern=r"^\d+\.\d+$")
    source: str = ""

    @model_validator(mode="after")
    def _figures(self) -> GpuSpecSection:
        for field, unit in GPU_FIGURES:
            value = getattr(self, field)
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise ValueError(
                    f"{field}: must be above 0 ({unit}), got {value}; leave a figure out when "
                    "it is unknown"
                )
        return self


__all__ = [
    "GPU_FIGURES",
    "GpuSpecSection",
    "ModelSection",
    "NetworkSection",
    "Strict",
    "VariantSection",
    "drop_unset",
]

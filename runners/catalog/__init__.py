"""Facts about hardware and models: the physics inputs of the simulator and of the engine adapters.

`GpuSpec` and `ModelSpec` (in `specs.py`) are plain frozen dataclasses; the built-in tables
live in `gpus.py` and `models.py`, one entry per GPU or model with the public source of every
number. Any other model comes from its own config.json (`resolve_checkpoint`: catalogue, config
path, models folder, local Hugging Face cache; `hf_config.py` reads the architecture,
`quant.py` the quantization), any other GPU from an inline spec; both are registered
(`registry.py`) so that `get_gpu` and `get_model`, the only lookups by name, find them. An
unknown name raises `CatalogError` listing what is known. GPU traits (architecture, FP8/FP4
support, interconnect, device kind, the device-visibility variable) are fields of `GpuSpec`,
never read from a name. `checkpoint_quantization` says how a candidate's checkpoint is
quantized.
"""

from __future__ import annotations

from runners.catalog.quant import FORMATS, QuantFormat, Quantization
from runners.catalog.registry import (
    GPU_TABLE,
    MODEL_TABLE,
    is_builtin_gpu,
    register_checkpoint,
    register_gpu,
    register_model,
    registered_quantization,
)
from runners.catalog.resolve import Checkpoint, resolve_checkpoint, resolve_variant
from runners.catalog.specs import (
    ARCHITECTURE_TRAITS,
    GIB,
    Architecture,
    GpuSpec,
    MlaDims,
    ModelSpec,
)
from runners.errors import CatalogError


def get_gpu(name: str) -> GpuSpec:
    gpu = GPU_TABLE.find(name)
    if gpu is None:
        raise CatalogError(
            f"unknown GPU {name!r}; the catalogue knows: {', '.join(known_gpus())} (describe "
            "another one with hardware.gpu_spec in the space file)"
        )
    return gpu


def get_model(name: str) -> ModelSpec:
    model = MODEL_TABLE.find(name)
    if model is None:
        raise CatalogError(
            f"unknown model {name!r}; the catalogue knows: {', '.join(known_models())} "
            "(another model is read from its config.json: model.config in the space file)"
        )
    return model


def known_gpus() -> list[str]:
    return list(GPU_TABLE.entries)


def known_models() -> list[str]:
    return list(MODEL_TABLE.entries)


def checkpoint_quantization(checkpoint: str, fmt: QuantFormat, model: ModelSpec) -> Quantization:
    """How `checkpoint` is quantized: as read from its own files when it was resolved, else
    what format `fmt` means by itself (`Quantization.of_format`)."""
    return registered_quantization(checkpoint) or Quantization.of_format(fmt, model.is_moe)


__all__ = [
    "ARCHITECTURE_TRAITS",
    "FORMATS",
    "GIB",
    "Architecture",
    "Checkpoint",
    "GpuSpec",
    "MlaDims",
    "ModelSpec",
    "QuantFormat",
    "Quantization",
    "checkpoint_quantization",
    "get_gpu",
    "get_model",
    "is_builtin_gpu",
    "known_gpus",
    "known_models",
    "register_checkpoint",
    "register_gpu",
    "register_model",
    "resolve_checkpoint",
    "resolve_variant",
]

"""Facts about hardware and models: the physics inputs of the simulator and of the engine adapters.

`GpuSpec` and `ModelSpec` (in `specs.py`) are plain frozen dataclasses; the tables live in
`gpus.py` and `models.py`, one entry per GPU or model with the public source of every number.
`get_gpu` and `get_model` are the only lookups; an unknown name raises `CatalogError` listing
what is known. GPU traits (architecture, FP8/FP4 support, interconnect, device kind, the
device-visibility variable) are fields of `GpuSpec`, never read from a name.
"""

from __future__ import annotations

from runners.catalog.gpus import GPUS
from runners.catalog.models import MODELS
from runners.catalog.specs import GIB, Architecture, GpuSpec, ModelSpec
from runners.errors import CatalogError


def _index(entries: tuple[GpuSpec, ...] | tuple[ModelSpec, ...]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for entry in entries:
        names = (entry.name, *(entry.aliases if isinstance(entry, GpuSpec) else entry.hf_ids))
        for name in names:
            keys[name.lower()] = entry.name
    return keys


_GPU_KEYS = _index(GPUS)
_GPUS = {gpu.name: gpu for gpu in GPUS}
_MODEL_KEYS = _index(MODELS)
_MODELS = {model.name: model for model in MODELS}


def get_gpu(name: str) -> GpuSpec:
    key = _GPU_KEYS.get(name.lower())
    if key is None:
        raise CatalogError(f"unknown GPU {name!r}; the catalogue knows: {', '.join(_GPUS)}")
    return _GPUS[key]


def get_model(name: str) -> ModelSpec:
    key = _MODEL_KEYS.get(name.lower())
    if key is None:
        raise CatalogError(f"unknown model {name!r}; the catalogue knows: {', '.join(_MODELS)}")
    return _MODELS[key]


def known_gpus() -> list[str]:
    return list(_GPUS)


def known_models() -> list[str]:
    return list(_MODELS)


__all__ = [
    "GIB",
    "Architecture",
    "GpuSpec",
    "ModelSpec",
    "get_gpu",
    "get_model",
    "known_gpus",
    "known_models",
]

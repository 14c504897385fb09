"""Names of GPUs, models and checkpoints: the built-in tables plus what a run registered.

Place in the data flow: `runners.catalog.get_gpu` / `get_model` look names up here. The built-in
tables (`gpus.py`, `models.py`) are always known; a space file's inline GPU spec, a model read
from its config.json and the quantization of a checkpoint are registered while the space file
(or a replay row) is resolved, so every later lookup by name finds them. Registrations are
exported to the process environment (`CATALOG_ENV`, JSON), so a process this one starts (a Ray
worker, the engine emulator) knows them too: this module installs them when it is imported.
Lookups ignore case, and for GPUs also the difference between spaces, underscores and dashes
(``RTX 4090`` is ``RTX-4090``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from runners.catalog.gpus import GPUS
from runners.catalog.models import MODELS
from runners.catalog.quant import Quantization
from runners.catalog.specs import Architecture, GpuSpec, MlaDims, ModelSpec
from runners.errors import CatalogError

CATALOG_ENV = "SERVING_OPTIMIZER_CATALOG"


def gpu_key(name: str) -> str:
    return name.strip().lower().replace(" ", "-").replace("_", "-")


def model_key(name: str) -> str:
    return name.strip().lower()


Entry = TypeVar("Entry", GpuSpec, ModelSpec)


class _Table(Generic[Entry]):
    """Entries of one kind by canonical name, and every name and alias to the canonical one."""

    def __init__(self, kind: str, key: Callable[[str], str]) -> None:
        self.kind = kind
        self.key = key
        self.entries: dict[str, Entry] = {}
        self.names: dict[str, str] = {}
        self.builtin: set[str] = set()

    def add(self, entry: Entry, names: Iterable[str], builtin: bool) -> bool:
        """Add `entry`; False when an equal entry is there already. A name taken by another
        entry is a `CatalogError`."""
        known = self.entries.get(entry.name)
        if known is not None:
            if known == entry:
                return False
            where = "the catalogue" if entry.name in self.builtin else "an earlier definition"
            raise CatalogError(
                f"{self.kind} {entry.name!r} is already defined by {where} with other "
                "figures; give yours another name"
            )
        for name in names:
            owner = self.names.get(self.key(name))
            if owner is not None and owner != entry.name:
                raise CatalogError(
                    f"{self.kind} name {name!r} already names {owner!r}; give yours another name"
                )
        self.entries[entry.name] = entry
        for name in names:
            self.names[self.key(name)] = entry.name
        if builtin:
            self.builtin.add(entry.name)
        return True

    def find(self, name: str) -> Entry | None:
        canonical = self.names.get(self.key(name))
        return None if canonical is None else self.entries[canonical]

    def extras(self) -> list[Entry]:
        return [e for n, e in self.entries.items() if n not in self.builtin]


GPU_TABLE: _Table[GpuSpec] = _Table("GPU", gpu_key)
MODEL_TABLE: _Table[ModelSpec] = _Table("model", model_key)
CHECKPOINTS: dict[str, Quantization] = {}

for _gpu in GPUS:
    GPU_TABLE.add(_gpu, (_gpu.name, *_gpu.aliases), builtin=True)
for _model in MODELS:
    MODEL_TABLE.add(_model, (_model.name, *_model.hf_ids), builtin=True)


def is_builtin_gpu(name: str) -> bool:
    gpu = GPU_TABLE.find(name)
    return gpu is not None and gpu.name in GPU_TABLE.builtin


def is_builtin_model(name: str) -> bool:
    model = MODEL_TABLE.find(name)
    return model is not None and model.name in MODEL_TABLE.builtin


def register_gpu(gpu: GpuSpec) -> GpuSpec:
    """Make `gpu` known by its name and aliases (again: no-op; other figures: error)."""
    if GPU_TABLE.add(gpu, (gpu.name, *gpu.aliases), builtin=False):
        _export()
    return gpu


def register_model(model: ModelSpec) -> ModelSpec:
    """Make `model` known by its name and checkpoint ids."""
    if MODEL_TABLE.add(model, (model.name, *model.hf_ids), builtin=False):
        _export()
    return model


def register_checkpoint(checkpoint: str, quantization: Quantization) -> None:
    """Remember how `checkpoint` is quantized (read from its own files)."""
    key = model_key(checkpoint)
    known = CHECKPOINTS.get(key)
    if known == quantization:
        return
    if known is not None and known.format != quantization.format:
        raise CatalogError(
            f"checkpoint {checkpoint!r} was read as {known.format} ({known.source}) and now as "
            f"{quantization.format} ({quantization.source}); name one checkpoint per format"
        )
    CHECKPOINTS[key] = quantization
    _export()


def registered_quantization(checkpoint: str) -> Quantization | None:
    return CHECKPOINTS.get(model_key(checkpoint))


# --- export to child processes -----------------------------------------------------------------


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _export() -> None:
    payload = {
        "gpus": [_plain(g) for g in GPU_TABLE.extras()],
        "models": [_plain(m) for m in MODEL_TABLE.extras()],
        "checkpoints": {k: _plain(q) for k, q in CHECKPOINTS.items()},
    }
    os.environ[CATALOG_ENV] = json.dumps(payload, sort_keys=True)


def _gpu_from(data: dict[str, Any]) -> GpuSpec:
    data = dict(data)
    data["aliases"] = tuple(data["aliases"])
    data["architecture"] = Architecture(data["architecture"])
    if data.get("compute_capability") is not None:
        data["compute_capability"] = tuple(data["compute_capability"])
    return GpuSpec(**data)


def _model_from(data: dict[str, Any]) -> ModelSpec:
    data = dict(data)
    data["hf_ids"] = tuple(data["hf_ids"])
    if data.get("mla") is not None:
        data["mla"] = MlaDims(**data["mla"])
    return ModelSpec(**data)


def install_from_environment() -> None:
    """Register what the parent process exported (nothing when it exported nothing)."""
    text = os.environ.get(CATALOG_ENV)
    if not text:
        return
    payload = json.loads(text)
    for gpu in payload.get("gpus", []):
        GPU_TABLE.add(_gpu_from(gpu), (gpu["name"], *gpu["aliases"]), builtin=False)
    for model in payload.get("models", []):
        MODEL_TABLE.add(_model_from(model), (model["name"], *model["hf_ids"]), builtin=False)
    for key, quant in payload.get("checkpoints", {}).items():
        CHECKPOINTS[key] = Quantization(**quant)


install_from_environment()

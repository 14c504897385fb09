"""One resolver for every model name: the catalogue, then the model's own config.json.

Place in the data flow: the space file (model and variants), replay rows and calibration all
call `resolve_checkpoint`. A name is resolved, in order, from:

1. the catalogue (built-in names, aliases and checkpoint ids; runners/catalog/models.py);
2. a config path given with it: a config.json, or a local model folder in Hugging Face layout;
3. a models folder (`models_dir`, else the environment variable `MODELS_DIR_ENV`) holding
   ``<org>--<name>.json`` or ``<org>/<name>/config.json``;
4. the local Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``): ``models--<org>--<name>/snapshots/<revision>/config.json``,
   the revision ``refs/main`` points to (else the newest snapshot).

Never the network. A name ending in a quantization suffix (``-FP8``, ``-AWQ``, ``-W8A8``, ...)
that none of these knows resolves to its base model plus that quantization. The checkpoint's
quantization comes from its config (``quantization_config``, or a companion
``hf_quant_config.json``) wherever one was found, else from the suffix, else it is left to the
space file's variant key. A model read from a config is registered under the checkpoint's name
(and its short name), so later lookups by name find it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runners.catalog.hf_config import model_from_config
from runners.catalog.quant import Quantization, format_from_suffix, read_quantization
from runners.catalog.registry import MODEL_TABLE, register_checkpoint, register_model
from runners.catalog.specs import ModelSpec
from runners.errors import CatalogError

MODELS_DIR_ENV = "SERVING_OPTIMIZER_MODELS"
ARCHITECTURE_FIELDS = (
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "num_experts",
    "experts_per_token",
    "moe_intermediate",
    "vocab",
    "mla",
)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as resolved: the model it is, its id, its quantization (None: nothing
    says; the variant's format applies), and where each came from."""

    name: str
    model: ModelSpec
    quantization: Quantization | None
    source: str


@dataclass(frozen=True)
class ConfigFiles:
    """A checkpoint's config.json (and hf_quant_config.json companion) as read from disk."""

    config: dict[str, Any]
    companion: dict[str, Any] | None
    where: str


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: must hold a JSON object (a model's config.json)")
    return data


def read_config_files(path: Path) -> ConfigFiles:
    """A config.json, or a model folder holding one, with its companion if present."""
    try:
        config_path = path / "config.json" if path.is_dir() else path
        found = config_path.is_file()
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path!r}: not a usable path: {exc}") from None
    if not found:
        raise CatalogError(
            f"{path}: no such config.json (give a config.json file or a model folder in "
            "Hugging Face layout)"
        )
    companions = (
        config_path.with_name("hf_quant_config.json"),
        config_path.with_name(config_path.name.removesuffix(".json") + ".hf_quant_config.json"),
    )
    companion = next((_read_json(c) for c in companions if c.is_file()), None)
    return ConfigFiles(_read_json(config_path), companion, str(config_path))


def models_dir_from_env() -> Path | None:
    text = os.environ.get(MODELS_DIR_ENV)
    return Path(text).expanduser() if text else None


def hf_hub_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or "~/.cache/huggingface"
    return Path(home).expanduser() / "hub"


def _split(name: str) -> tuple[str, str] | None:
    parts = name.strip().split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def _in_models_dir(name: str, folder: Path) -> Path | None:
    parts = _split(name)
    if parts is None:
        return None
    org, model = parts
    for candidate in (folder / f"{org}--{model}.json", folder / org / model / "config.json"):
        if candidate.is_file():
            return candidate
    return None


def _in_hf_cache(name: str, hub: Path) -> Path | None:
    parts = _split(name)
    if parts is None:
        return None
    repo = hub / f"models--{parts[0]}--{parts[1]}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        pinned = snapshots / ref.read_text(encoding="utf-8").strip() / "config.json"
        if pinned.is_file():
            return pinned
    found = sorted(
        (p for p in snapshots.glob("*/config.json") if p.is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    return found[-1] if found else None


def find_config(
    name: str, config: Path | None, models_dir: Path | None
) -> tuple[ConfigFiles, str] | None:
    """The config files for checkpoint `name` and where they were found (None: nowhere)."""
    if config is not None:
        return read_config_files(config), f"the config path {config}"
    folder = models_dir or models_dir_from_env()
    try:
        in_folder = _in_models_dir(name, folder) if folder is not None else None
        in_cache = None if in_folder is not None else _in_hf_cache(name, hf_hub_dir())
    except (OSError, ValueError):  # a name no file can have (a NUL, too long): not there
        return None
    if in_folder is not None:
        return read_config_files(in_folder), f"the models folder {folder}"
    if in_cache is not None:
        return read_config_files(in_cache), f"the Hugging Face cache {hf_hub_dir()}"
    return None


def _short_name(name: str) -> str:
    return name.strip().split("/")[-1]


def _catalogue(name: str) -> ModelSpec | None:
    """A catalogued model by name or checkpoint id; an org-less name matches a unique id."""
    found = MODEL_TABLE.find(name)
    if found is not None:
        return found
    short = _short_name(name).lower()
    matches = {
        model.name
        for model in MODEL_TABLE.entries.values()
        if any(_short_name(i).lower() == short for i in model.hf_ids)
    }
    if len(matches) == 1:
        return MODEL_TABLE.entries[matches.pop()]
    return None


def _same_architecture(a: ModelSpec, b: ModelSpec) -> str | None:
    for field in ARCHITECTURE_FIELDS:
        if getattr(a, field) != getattr(b, field):
            return f"{field} {getattr(b, field)} where {a.name} has {getattr(a, field)}"
    return None


def _fit(quant: Quantization | None, model: ModelSpec) -> Quantization | None:
    """MXFP4 named only by a suffix quantizes a MoE model's routed experts (as gpt-oss)."""
    if quant is not None and quant.format == "mxfp4" and model.is_moe and not quant.experts_only:
        return replace(quant, experts_only=True)
    return quant


def resolve_checkpoint(
    name: str,
    config: Path | None = None,
    models_dir: Path | None = None,
    model_name: str | None = None,
) -> Checkpoint:
    """Resolve model or checkpoint `name`; `config` is a config path given with it,
    `models_dir` overrides the environment's models folder, `model_name` names a model read
    from a config (default: the short name of `name`). Raises `CatalogError` saying where it
    looked and how to make the model known."""
    catalogued = _catalogue(name)
    if catalogued is not None:
        return resolve_variant(name, catalogued, config, models_dir)
    files = find_config(name, config, models_dir)
    if files is not None:
        found, where = files
        read = model_from_config(
            found.config, model_name or _short_name(name), (name.strip(),), found.where
        )
        quant = _declared(found, read)
        model = register_model(_with_expert_bits(read, quant))
        register_checkpoint(name, quant)
        return Checkpoint(name.strip(), model, quant, where)
    suffixed = format_from_suffix(name)
    if suffixed is None:
        raise _unknown(name, models_dir)
    base = resolve_checkpoint(suffixed[0], None, models_dir, model_name)
    suffix_quant = _fit(suffixed[1], base.model) or suffixed[1]
    register_checkpoint(name, suffix_quant)
    source = f"{base.source}, as {suffixed[0]} with {suffix_quant.source}"
    return Checkpoint(name.strip(), base.model, suffix_quant, source)


def resolve_variant(
    name: str, model: ModelSpec, config: Path | None = None, models_dir: Path | None = None
) -> Checkpoint:
    """Checkpoint `name` of a known `model`: its quantization from its own config where one
    is found (whose architecture must be `model`'s), else from its name's suffix, else None."""
    files = find_config(name, config, models_dir)
    if files is not None:
        found, where = files
        read = model_from_config(found.config, model.name, (name.strip(),), found.where)
        if (why := _same_architecture(model, read)) is not None:
            raise CatalogError(
                f"{found.where}: describes another architecture than {model.name} ({why}); "
                "give the config of a checkpoint of this model"
            )
        quant: Quantization | None = _declared(found, model)
        source = f"the catalogue ({model.name}); its quantization from {where}"
    else:
        suffixed = format_from_suffix(name)
        quant = _fit(suffixed[1], model) if suffixed is not None else None
        source = f"the catalogue ({model.name})"
    if quant is not None:
        register_checkpoint(name, quant)
    return Checkpoint(name.strip(), model, quant, source)


def _declared(found: ConfigFiles, model: ModelSpec) -> Quantization:
    """The quantization a checkpoint's own files declare; none declared means BF16."""
    quant = _fit(read_quantization(found.config, found.companion, found.where), model)
    if quant is None:
        return Quantization("bf16", source=f"{found.where} (no quantization_config)")
    return quant


def _with_expert_bits(model: ModelSpec, quant: Quantization | None) -> ModelSpec:
    if quant is None or not quant.experts_only:
        return model
    return replace(model, expert_weight_bits=quant.expert_weight_bits)


def _unknown(name: str, models_dir: Path | None) -> CatalogError:
    folder = models_dir or models_dir_from_env()
    looked = [
        "the catalogue",
        f"the models folder {folder}" if folder else f"no models folder (${MODELS_DIR_ENV} unset)",
        f"the Hugging Face cache {hf_hub_dir()}",
    ]
    known = ", ".join(m.name for m in MODEL_TABLE.entries.values())
    return CatalogError(
        f"unknown model {name!r}: no config.json found in {', '.join(looked)}. Give its "
        "config.json path (model.config), put it in a models folder as <org>--<name>.json, or "
        "fetch it into the Hugging Face cache (huggingface-cli download <org>/<name> "
        f"config.json); the catalogue knows: {known}"
    )


__all__ = [
    "MODELS_DIR_ENV",
    "Checkpoint",
    "ConfigFiles",
    "find_config",
    "hf_hub_dir",
    "read_config_files",
    "resolve_checkpoint",
    "resolve_variant",
]

"""The space file's model, checkpoints and GPU, resolved against the catalogue.

Place in the data flow: first step of `optimizer.spec.checks.cross_check`. The model is
resolved by `runners.catalog.resolve_checkpoint` (catalogue, then `model.config`, a models
folder, the local Hugging Face cache), each variant's checkpoint by `resolve_variant` (its
quantization from its own config where one is found, else from its name's suffix, else from the
variant key), and an inline `hardware.gpu_spec` becomes a `GpuSpec`. What is read is registered
in the catalogue, so every later lookup by name (candidates, engines, the simulator) finds it.
Relative config paths are relative to the space file's folder. Each problem is
``field.path: message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from optimizer.spec.catalog_sections import GpuSpecSection
from optimizer.spec.models import StudySpec
from runners.catalog import (
    ARCHITECTURE_TRAITS,
    Architecture,
    GpuSpec,
    ModelSpec,
    get_gpu,
    is_builtin_gpu,
    register_gpu,
    resolve_checkpoint,
    resolve_variant,
)
from runners.errors import CatalogError


@dataclass(frozen=True)
class Resolution:
    """The model and GPU of a space file, or the problems found resolving them."""

    model: ModelSpec | None
    gpu: GpuSpec | None
    problems: tuple[str, ...]


def _path(text: str | None, base_dir: Path) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    return path if path.is_absolute() else base_dir / path


def resolve_model(spec: StudySpec, base_dir: Path) -> tuple[ModelSpec | None, list[str]]:
    section = spec.model
    try:
        found = resolve_checkpoint(
            section.name, config=_path(section.config, base_dir), model_name=section.name
        )
    except CatalogError as exc:
        field = "model.config" if section.config else "model.name"
        return None, [f"{field}: {exc}"]
    problems: list[str] = []
    for variant in section.variants:
        field = f"model.variants.{variant}"
        try:
            checkpoint = resolve_variant(
                section.checkpoint(variant),
                found.model,
                config=_path(section.variant_config(variant), base_dir),
            )
        except CatalogError as exc:
            problems.append(f"{field}: {exc}")
            continue
        quantization = checkpoint.quantization
        if quantization is not None and quantization.format != variant:
            problems.append(
                f"{field}: checkpoint {checkpoint.name!r} is {quantization.format} "
                f"({quantization.describe()}, from {quantization.source}); list it under "
                f"model.variants.{quantization.format}"
            )
    return found.model, problems


def gpu_spec(section: GpuSpecSection) -> GpuSpec:
    """The `GpuSpec` of an inline description; its traits come from its architecture."""
    architecture = Architecture(section.architecture)
    traits = ARCHITECTURE_TRAITS[architecture]
    capability = traits.compute_capability
    if section.compute_capability is not None:
        major, minor = section.compute_capability.split(".")
        capability = (int(major), int(minor))
    fp8 = traits.fp8_compute or section.fp8_tflops is not None
    return GpuSpec(
        name=section.name,
        aliases=(),
        bf16_tflops=section.bf16_tflops,
        fp8_tflops=section.fp8_tflops,
        memory_gib_usable=section.memory_gib,
        hbm_tb_s=section.hbm_tb_s,
        link_gb_s=section.link_gb_s,
        link_kind=section.interconnect,
        source=section.source or "the space file's hardware.gpu_spec",
        vendor=traits.vendor,
        kubernetes_resource=traits.kubernetes_resource,
        architecture=architecture,
        device=traits.device,
        interconnect=section.interconnect,
        visible_devices_env=traits.visible_devices_env,
        fp8_compute=fp8,
        fp4_compute=traits.fp4_compute or section.fp4_tflops is not None,
        compute_capability=capability if traits.vendor == "nvidia" else None,
        fp4_tflops=section.fp4_tflops,
        int8_tops=section.int8_tops,
        inter_node_gb_s=section.inter_node_gb_s,
    )


def resolve_gpu(spec: StudySpec) -> tuple[GpuSpec | None, list[str]]:
    inline = spec.hardware.gpu_spec
    if inline is not None:
        field = "hardware.gpu_spec"
        if is_builtin_gpu(inline.name):
            return None, [
                f"{field}.name: {inline.name!r} is a catalogue GPU ({get_gpu(inline.name).name}); "
                "give yours another name, or drop gpu_spec to use the catalogue's figures"
            ]
        traits = ARCHITECTURE_TRAITS[Architecture(inline.architecture)]
        for fmt, rate, supported in (
            ("FP8", inline.fp8_tflops, traits.fp8_compute),
            ("FP4", inline.fp4_tflops, traits.fp4_compute),
        ):
            if rate is not None and not supported:
                return None, [
                    f"{field}.{fmt.lower()}_tflops: {inline.architecture} tensor cores do not "
                    f"compute in {fmt}; leave it out (or correct the architecture)"
                ]
        try:
            register_gpu(gpu_spec(inline))
        except CatalogError as exc:
            return None, [f"{field}: {exc}"]
    name = spec.node_group.gpu
    try:
        return get_gpu(name), []
    except CatalogError as exc:
        return None, [f"hardware.node_groups.0.gpu: {exc}"]


def resolve_space(spec: StudySpec, base_dir: Path) -> Resolution:
    model, problems = resolve_model(spec, base_dir)
    gpu, gpu_problems = resolve_gpu(spec)
    return Resolution(model, gpu, tuple(problems + gpu_problems))


__all__ = ["Resolution", "gpu_spec", "resolve_gpu", "resolve_model", "resolve_space"]

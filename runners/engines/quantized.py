"""A checkpoint's quantization applied to a resolved configuration.

Place in the data flow: `resolve_candidate` (and pre-flight's `rule_breaks`) ask the catalogue
how the candidate's checkpoint is quantized (`runners.catalog.checkpoint_quantization`: read
from its files, its name's suffix, or the variant's format) and the adapters build the
`ServingConfig` with its storage class (``fp8`` or ``bf16``); `with_quantization` then records
the format itself (`ServingConfig.weight_quant`) and, when only the routed experts are
quantized, their bits on the model, so the simulator's memory and compute follow the
checkpoint.
"""

from __future__ import annotations

from dataclasses import replace

from runners.catalog import Quantization
from runners.types import ServingConfig


def with_quantization(config: ServingConfig, quantization: Quantization) -> ServingConfig:
    """`config` with `quantization`'s format and expert bits (unchanged when they agree).

    A quantization assumed from a format name alone leaves a catalogued model's own expert
    format in place (gpt-oss ships MXFP4 experts whatever its variant is called)."""
    model = config.model
    if quantization.experts_only:
        bits = quantization.expert_weight_bits
    elif quantization.assumed:
        bits = model.expert_weight_bits
    else:
        bits = 0.0
    if bits != model.expert_weight_bits:
        model = replace(model, expert_weight_bits=bits)
    weight_quant = quantization.weight_quant
    if model is config.model and weight_quant == config.weight_quant:
        return config
    return replace(config, model=model, weight_quant=weight_quant)


__all__ = ["with_quantization"]

"""Checkpoint quantization read from quantization_config, hf_quant_config.json or the name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runners.catalog.quant import (
    FORMAT_FACTS,
    FORMATS,
    Quantization,
    format_from_suffix,
    read_quantization,
)
from runners.errors import CatalogError

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"


def config(name: str) -> dict[str, Any]:
    loaded = json.loads((MODELS / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def quant(raw: dict[str, Any], companion: dict[str, Any] | None = None) -> Quantization | None:
    return read_quantization(raw, companion, "ckpt")


def test_block_fp8_from_quantization_config() -> None:
    found = quant(config("deepseek-ai--DeepSeek-V3.json"))
    assert found is not None and found.format == "fp8" and found.block_scaled
    assert found.weight_quant == "" and found.storage == "fp8"


def test_modelopt_fp8_from_the_companion_file_with_fp8_kv_scales() -> None:
    found = quant(
        config("nvidia--Llama-3.1-70B-Instruct-FP8.json"),
        config("nvidia--Llama-3.1-70B-Instruct-FP8.hf_quant_config.json"),
    )
    assert found is not None and found.format == "fp8"
    assert not found.block_scaled and found.kv_cache_fp8
    assert found.weight_quant == "fp8-tensor"
    assert "hf_quant_config.json" in found.source


def test_gpt_oss_mxfp4_quantizes_the_experts_only() -> None:
    found = quant(config("openai--gpt-oss-20b.json"))
    assert found is not None and found.format == "mxfp4" and found.experts_only
    assert found.expert_weight_bits == pytest.approx(4.25)
    assert found.weight_quant == ""  # attention, router and embeddings stay BF16


def test_an_unquantized_config_declares_nothing() -> None:
    assert quant(config("Qwen--Qwen3-32B.json")) is None


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "awq"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "gptq"),
        ({"quant_method": "fbgemm_fp8"}, "fp8"),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "nvfp4"),
        ({"quant_method": "modelopt", "quant_algo": "W8A8_SQ_PER_CHANNEL"}, "int8"),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "group_0": {
                        "weights": {"num_bits": 8, "type": "int", "strategy": "channel"},
                        "input_activations": {"num_bits": 8, "type": "int"},
                    }
                },
            },
            "int8",
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "group_0": {
                        "weights": {"num_bits": 4, "type": "float", "group_size": 16},
                        "input_activations": {"num_bits": 4, "type": "float"},
                    }
                },
            },
            "nvfp4",
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "group_0": {"weights": {"num_bits": 4, "type": "int"}},
                },
            },
            "gptq",
        ),
    ],
)
def test_each_modelled_method(raw: dict[str, Any], fmt: str) -> None:
    found = quant({"quantization_config": raw})
    assert found is not None and found.format == fmt


def test_an_unknown_method_is_refused_naming_the_field_and_the_known_ones() -> None:
    with pytest.raises(CatalogError) as caught:
        quant({"quantization_config": {"quant_method": "bitsandbytes"}})
    message = str(caught.value)
    assert "ckpt: quantization_config.quant_method: 'bitsandbytes'" in message
    assert "awq" in message and "modelopt" in message


def test_eight_bit_gptq_is_refused_naming_bits() -> None:
    with pytest.raises(CatalogError, match=r"quantization_config\.bits: gptq with 8-bit"):
        quant({"quantization_config": {"quant_method": "gptq", "bits": 8}})


def test_an_unknown_modelopt_algorithm_is_refused() -> None:
    with pytest.raises(CatalogError, match="quant_algo 'W4A8_AWQ' is not modelled"):
        quant({}, {"quantization": {"quant_algo": "W4A8_AWQ"}})


@pytest.mark.parametrize(
    ("name", "base", "fmt"),
    [
        ("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "Qwen/Qwen3-235B-A22B-Instruct-2507", "fp8"),
        ("nvidia/Llama-3.1-70B-Instruct-FP8", "nvidia/Llama-3.1-70B-Instruct", "fp8"),
        ("Qwen/Qwen3-32B-W8A8", "Qwen/Qwen3-32B", "int8"),
        ("Qwen/Qwen3-14B-AWQ", "Qwen/Qwen3-14B", "awq"),
        ("Qwen/Qwen3-8B-GPTQ-Int4", "Qwen/Qwen3-8B", "gptq"),
        (
            "RedHatAI/Llama-3.1-8B-Instruct-quantized.w8a8",
            "RedHatAI/Llama-3.1-8B-Instruct",
            "int8",
        ),
        ("nvidia/DeepSeek-R1-FP4", "nvidia/DeepSeek-R1", "nvfp4"),
        (
            "RedHatAI/Mixtral-8x7B-Instruct-v0.1-FP8-dynamic",
            "RedHatAI/Mixtral-8x7B-Instruct-v0.1",
            "fp8",
        ),
    ],
)
def test_suffixes_name_the_base_model_and_the_format(name: str, base: str, fmt: str) -> None:
    found = format_from_suffix(name)
    assert found is not None
    assert found[0] == base and found[1].format == fmt


def test_no_suffix_no_format() -> None:
    assert format_from_suffix("Qwen/Qwen3-32B") is None


def test_every_format_has_its_facts() -> None:
    assert set(FORMAT_FACTS) == set(FORMATS)
    assert FORMAT_FACTS["bf16"].weight_bytes == 2.0
    assert FORMAT_FACTS["fp8"].weight_bytes == FORMAT_FACTS["int8"].weight_bytes == 1.0
    assert FORMAT_FACTS["nvfp4"].compute == "fp4" and FORMAT_FACTS["awq"].compute == "w4a16"

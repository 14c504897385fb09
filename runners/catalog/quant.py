"""Checkpoint quantization: the formats the tool models, read from a checkpoint's own files.

Place in the data flow: `read_quantization` turns a config.json's ``quantization_config`` (or
the ``hf_quant_config.json`` a ModelOpt checkpoint ships beside it) into a `Quantization`; a
checkpoint whose files are not at hand gets one from the suffix of its name
(`format_from_suffix`) or from the space file's variant key (`Quantization.of_format`). The
engine layer applies it to the `ServingConfig` the simulator consumes (`weight_dtype`,
`weight_quant`, the routed experts' bits). `FORMAT_FACTS` says, per format, the bytes a weight
takes, the storage class engines ask about, and which tensor-core path computes it (the GPU's
FP8 / FP4 / INT8 rates, or a 4-bit weight-only kernel at the BF16 rate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from runners.errors import CatalogError

QuantFormat = Literal["bf16", "fp8", "int8", "awq", "gptq", "mxfp4", "nvfp4"]
FORMATS: tuple[QuantFormat, ...] = get_args(QuantFormat)
StorageClass = Literal["bf16", "fp8"]
ComputePath = Literal["bf16", "fp8", "int8", "w4a16", "fp4"]


@dataclass(frozen=True)
class FormatFacts:
    """What one checkpoint format means for memory and compute.

    `weight_bytes` per quantized weight, scales included; `storage` is the class engines and
    their rules ask about (``fp8`` for FP8 weights, else ``bf16``); `compute` the tensor-core
    path: BF16, the GPU's FP8 / INT8 / FP4 rate, or ``w4a16`` (4-bit weights dequantized into
    BF16 GEMMs, at the BF16 rate times the 4-bit kernel efficiency).
    """

    weight_bytes: float
    storage: StorageClass
    compute: ComputePath
    describe: str


FORMAT_FACTS: dict[QuantFormat, FormatFacts] = {
    "bf16": FormatFacts(2.0, "bf16", "bf16", "unquantized BF16 / FP16 weights"),
    "fp8": FormatFacts(
        1.0, "fp8", "fp8", "FP8 E4M3 weights and activations, block or per-tensor scales"
    ),
    "int8": FormatFacts(
        1.0, "bf16", "int8", "INT8 weights and activations (W8A8, per-channel / per-token)"
    ),
    # 4-bit weights + an FP16 scale and zero point per group of 128 (≈ 4.25 bits)
    "awq": FormatFacts(0.53, "bf16", "w4a16", "AWQ INT4 weight-only, groups of 128"),
    "gptq": FormatFacts(0.53, "bf16", "w4a16", "GPTQ INT4 weight-only, groups of 128"),
    # 4-bit E2M1 + one E8M0 scale per 32 = 4.25 bits
    "mxfp4": FormatFacts(4.25 / 8, "bf16", "w4a16", "MXFP4 (E2M1, one E8M0 scale per 32)"),
    # 4-bit E2M1 + one FP8 scale per 16 = 4.5 bits
    "nvfp4": FormatFacts(4.5 / 8, "bf16", "fp4", "NVFP4 (E2M1, one FP8 scale per 16)"),
}


@dataclass(frozen=True)
class Quantization:
    """How one checkpoint stores its weights.

    `block_scaled` (FP8): 128 x 128 weight blocks, whose shards must stay whole (DeepSeek and
    Qwen FP8 checkpoints); otherwise per-tensor or per-channel scales. `experts_only`: only the
    routed experts are quantized, everything else stays BF16 (gpt-oss MXFP4). `kv_cache_fp8`:
    the checkpoint ships calibrated FP8 KV-cache scales (ModelOpt). `source` says where this
    was read; `assumed` marks a quantization taken from a format name alone (nothing read
    from the checkpoint), which leaves a catalogued model's own expert format in place.
    """

    format: QuantFormat
    block_scaled: bool = False
    experts_only: bool = False
    kv_cache_fp8: bool = False
    source: str = ""
    assumed: bool = False

    @property
    def facts(self) -> FormatFacts:
        return FORMAT_FACTS[self.format]

    @property
    def storage(self) -> StorageClass:
        return self.facts.storage

    @property
    def weight_quant(self) -> str:
        """`ServingConfig.weight_quant`: empty for BF16 and block-FP8 (the formats the
        simulator was calibrated with), else the format (per-tensor FP8 is ``fp8-tensor``)."""
        if self.format == "bf16" or self.experts_only:
            return ""
        if self.format == "fp8":
            return "" if self.block_scaled else "fp8-tensor"
        return self.format

    @property
    def expert_weight_bits(self) -> float:
        """Bits per routed-expert weight when only the experts are quantized (else 0)."""
        return self.facts.weight_bytes * 8 if self.experts_only else 0.0

    def describe(self) -> str:
        text = self.facts.describe
        if self.format == "fp8":
            text = "FP8 E4M3, " + ("128x128 block scales" if self.block_scaled else "per-tensor")
        if self.experts_only:
            text += ", routed experts only (the rest BF16)"
        if self.kv_cache_fp8:
            text += ", with FP8 KV-cache scales"
        return text

    @staticmethod
    def of_format(fmt: QuantFormat, moe: bool, source: str = "") -> Quantization:
        """What a format means when the checkpoint's files are not at hand: FP8 as 128 x 128
        blocks (as the Qwen and DeepSeek FP8 checkpoints ship), MXFP4 on the routed experts of
        a MoE model (as gpt-oss ships)."""
        return Quantization(
            fmt,
            block_scaled=fmt == "fp8",
            experts_only=fmt == "mxfp4" and moe,
            source=source or f"the variant's format {fmt!r} (no config.json of the checkpoint)",
            assumed=True,
        )


# --- reading a checkpoint's files ------------------------------------------------------------

_MODELOPT_ALGOS: dict[str, tuple[QuantFormat, bool]] = {
    "FP8": ("fp8", False),
    "FP8_PER_CHANNEL_PER_TOKEN": ("fp8", False),
    "FP8_BLOCK_SCALES": ("fp8", True),
    "FP8_PB_WO": ("fp8", True),
    "NVFP4": ("nvfp4", False),
    "MXFP4": ("mxfp4", False),
    "W4A16_AWQ": ("awq", False),
    "W8A8_SQ_PER_CHANNEL": ("int8", False),
    "W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN": ("int8", False),
    "INT8_SQ": ("int8", False),
}
_METHODS = (
    "fp8",
    "fbgemm_fp8",
    "awq",
    "gptq",
    "mxfp4",
    "modelopt",
    "compressed-tensors",
    "w8a8_int8",
)


def read_quantization(
    config: Mapping[str, object], companion: Mapping[str, object] | None, where: str
) -> Quantization | None:
    """The quantization a checkpoint declares (None: unquantized).

    `config` is its config.json (the text model's, or the wrapper's: quantization_config sits
    at the top), `companion` its hf_quant_config.json when it ships one; `where` names the
    files in errors. A method or algorithm the tool does not model is a `CatalogError` naming
    the field.
    """
    if companion is not None:
        return _modelopt(companion.get("quantization"), f"{where} hf_quant_config.json")
    raw = config.get("quantization_config")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: quantization_config must be a mapping, got {raw!r}")
    method = str(raw.get("quant_method", "")).lower()
    field = f"{where}: quantization_config"
    source = f"{where} quantization_config"
    if method == "fp8":
        return Quantization("fp8", block_scaled="weight_block_size" in raw, source=source)
    if method == "fbgemm_fp8":
        return Quantization("fp8", source=source)
    if method in ("awq", "gptq"):
        bits = raw.get("bits", raw.get("w_bit", 4))
        if bits != 4:
            raise CatalogError(
                f"{field}.bits: {method} with {bits}-bit weights is not modelled (only 4-bit "
                f"AWQ/GPTQ); use a 4-bit {method} checkpoint or an FP8 / INT8 W8A8 one"
            )
        return Quantization("awq" if method == "awq" else "gptq", source=source)
    if method == "mxfp4":
        skipped = raw.get("modules_to_not_convert") or []
        experts_only = isinstance(skipped, list) and any("attn" in str(m) for m in skipped)
        return Quantization("mxfp4", experts_only=experts_only, source=source)
    if method == "modelopt":
        return _modelopt(raw, source)
    if method == "w8a8_int8":
        return Quantization("int8", source=source)
    if method == "compressed-tensors":
        return _compressed_tensors(raw, field, source)
    raise CatalogError(
        f"{field}.quant_method: {raw.get('quant_method')!r} is not a quantization the tool "
        f"models (known: {', '.join(_METHODS)}); use a checkpoint quantized with one of them"
    )


def _modelopt(raw: object, source: str) -> Quantization:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{source}: needs a 'quantization' mapping with its quant_algo")
    algo = str(raw.get("quant_algo", ""))
    if algo not in _MODELOPT_ALGOS:
        raise CatalogError(
            f"{source}: quant_algo {algo!r} is not modelled (known: "
            f"{', '.join(_MODELOPT_ALGOS)}); use a checkpoint quantized with one of them"
        )
    fmt, block = _MODELOPT_ALGOS[algo]
    kv = str(raw.get("kv_cache_quant_algo") or "").upper() == "FP8"
    return Quantization(fmt, block_scaled=block, kv_cache_fp8=kv, source=source)


def _compressed_tensors(raw: Mapping[str, object], field: str, source: str) -> Quantization:
    """llm-compressor checkpoints: the weight and activation schemes of their first group."""
    groups = raw.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        raise CatalogError(f"{field}.config_groups: missing; cannot tell the scheme")
    name, group = next(iter(groups.items()))
    if not isinstance(group, Mapping) or not isinstance(group.get("weights"), Mapping):
        raise CatalogError(f"{field}.config_groups.{name}.weights: missing")
    weights = group["weights"]
    acts = group.get("input_activations")
    assert isinstance(weights, Mapping)
    bits, kind = weights.get("num_bits"), weights.get("type")
    act_bits = acts.get("num_bits") if isinstance(acts, Mapping) else None
    strategy = str(weights.get("strategy", ""))
    if kind == "float" and bits == 8:
        return Quantization("fp8", block_scaled=strategy == "block", source=source)
    if kind == "int" and bits == 8 and act_bits == 8:
        return Quantization("int8", source=source)
    if kind == "int" and bits == 4 and act_bits is None:
        return Quantization("gptq", source=source)
    if kind == "float" and bits == 4:
        return Quantization("nvfp4", source=source)
    raise CatalogError(
        f"{field}.config_groups.{name}: weights {kind} {bits}-bit with activations "
        f"{act_bits or 'unquantized'} is not modelled (known: FP8, INT8 W8A8, INT4 W4A16, NVFP4)"
    )


# --- a checkpoint named by its suffix ----------------------------------------------------------

SUFFIXES: tuple[tuple[str, QuantFormat, bool], ...] = (
    ("-fp8-dynamic", "fp8", False),
    ("-fp8-static", "fp8", False),
    ("-fp8", "fp8", True),
    ("-quantized.w8a8", "int8", False),
    ("-w8a8", "int8", False),
    ("-awq", "awq", False),
    ("-gptq-int4", "gptq", False),
    ("-gptq", "gptq", False),
    ("-w4a16", "gptq", False),
    ("-nvfp4", "nvfp4", False),
    ("-fp4", "nvfp4", False),
    ("-mxfp4", "mxfp4", False),
)
"""Name suffixes of quantized checkpoints (case-insensitive) and their format; ``-FP8`` alone
is taken as 128 x 128 blocks (the Qwen and DeepSeek releases)."""


def format_from_suffix(name: str) -> tuple[str, Quantization] | None:
    """(base name, quantization) when `name` ends in a quantization suffix, else None."""
    lowered = name.lower()
    for suffix, fmt, block in SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            source = f"the name's suffix {name[-len(suffix) :]!r}"
            return name[: -len(suffix)], Quantization(fmt, block_scaled=block, source=source)
    return None


__all__ = [
    "FORMATS",
    "FORMAT_FACTS",
    "SUFFIXES",
    "ComputePath",
    "FormatFacts",
    "QuantFormat",
    "Quantization",
    "StorageClass",
    "format_from_suffix",
    "read_quantization",
]

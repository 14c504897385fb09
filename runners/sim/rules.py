"""Startup validation rules that need no memory arithmetic (SIMULATOR.md §5, ENGINES.md §1.4).

First gate of `simulate`: a `ServingConfig` that the real engine would reject at argument
validation or model initialisation (TP not dividing the heads, block-FP8 shards, max_model_len
above the model limit, incompatible kernel backends, inconsistent scheduler limits) returns a
`Crash` with the engine's own error text before any memory planning or scheduling happens.
"""

from __future__ import annotations

from runners.types import Crash, CrashClass, ServingConfig

FP8_BLOCK = 128

# GPU architecture families by catalogue name (for kernel/backend compatibility).
GPU_ARCH: dict[str, str] = {
    "H100-SXM-80GB": "hopper",
    "H200-SXM-141GB": "hopper",
    "A100-SXM-80GB": "ampere",
    "L40S-48GB": "ada",
    "B200-SXM-180GB": "blackwell",
    "MI300X-192GB": "cdna3",
    "Ascend-910B": "ascend",
}


def gpu_arch(config: ServingConfig) -> str:
    return GPU_ARCH.get(config.gpu.name, "unknown")


def version_tuple(version: str) -> tuple[int, int]:
    """``"v0.11.0"`` -> (0, 11); unparsable parts count as 0."""
    parts = version.lstrip("vV").split(".")
    nums: list[int] = []
    for part in parts[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        nums.append(int(digits) if digits else 0)
    while len(nums) < 2:
        nums.append(0)
    return nums[0], nums[1]


def moe_shard_ranks(config: ServingConfig) -> int:
    """Ranks the MoE layers are sharded over: vLLM uses TP*DP, SGLang DP is whole replicas."""
    return config.tensor_parallel * (config.data_parallel if config.engine == "vllm" else 1)


def weight_bytes_per_param(config: ServingConfig) -> tuple[float, float]:
    """(dense, routed-expert) bytes per weight: BF16 2, FP8 1, 4-bit weight-only ~0.53 with
    group scales; a model whose checkpoint ships its own expert format (MXFP4) uses it."""
    if config.weight_quant in ("awq", "gptq"):
        dense = 0.53
    else:
        dense = 1.0 if config.weight_dtype == "fp8" else 2.0
    bits = config.model.expert_weight_bits
    expert = bits / 8.0 if bits > 0 else dense
    return dense, expert


def check_config(config: ServingConfig) -> Crash | None:
    """The first rule that rejects `config`, or None when it passes them all."""
    for rule in (
        _model_len,
        _tp_heads,
        _expert_parallel,
        _quantization_support,
        _fp8_block,
        _scheduler_limits,
        _spec_decode,
        _backends,
        _observed_failures,
    ):
        crash = rule(config)
        if crash is not None:
            return crash
    return None


def _model_len(config: ServingConfig) -> Crash | None:
    limit = config.model.max_position_embeddings
    if config.max_model_len <= limit:
        return None
    if config.engine == "sglang":
        msg = (
            f"ValueError: User-specified context_length ({config.max_model_len}) is greater "
            f"than the derived context_length ({limit}). This may lead to incorrect model "
            "outputs or CUDA errors. Note that the derived context_length may differ from "
            "max_position_embeddings in the model's config. To allow overriding this maximum, "
            "set the env var SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"
        )
    else:
        msg = (
            f"ValueError: User-specified max_model_len ({config.max_model_len}) is greater "
            f"than the derived max_model_len (max_position_embeddings={limit} or "
            "model_max_length=None in model's config.json). This may lead to incorrect model "
            "outputs or CUDA errors. To allow overriding this maximum, set the env var "
            "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"
        )
    return Crash(CrashClass.MODEL_LEN, msg)


def _tp_heads(config: ServingConfig) -> Crash | None:
    model, tp = config.model, config.tensor_parallel
    if model.heads % tp != 0:
        return Crash(
            CrashClass.TP_HEADS,
            f"ValueError: Total number of attention heads ({model.heads}) must be divisible "
            f"by tensor parallel size ({tp}).",
        )
    kv = model.kv_heads
    if tp <= kv and kv % tp != 0:
        return Crash(CrashClass.TP_HEADS, f"AssertionError: {kv} is not divisible by {tp}")
    if tp > kv and tp % kv != 0:
        return Crash(CrashClass.TP_HEADS, f"AssertionError: {tp} is not divisible by {kv}")
    return None


def _expert_parallel(config: ServingConfig) -> Crash | None:
    if config.expert_parallel and not config.model.is_moe:
        return Crash(
            CrashClass.INVALID_CONFIG,
            "ValueError: Number of experts in the model must be greater than 0 when expert "
            "parallelism is enabled.",
        )
    return None


def _quantization_support(config: ServingConfig) -> Crash | None:
    """TensorRT-LLM 1.2's PyTorch backend: block-FP8 GEMMs need SM89+; AWQ checkpoints are not
    loadable (GPUStack Qwen3-14B/32B on A100). MindIE/Ascend has no FP8 at all."""
    if config.engine == "trtllm":
        if config.weight_quant in ("awq", "gptq"):
            return Crash(CrashClass.INVALID_CONFIG, "KeyError: 'weight'")
        if config.weight_dtype == "fp8" and not config.gpu.has_fp8_compute:
            return Crash(
                CrashClass.UNSUPPORTED_BACKEND,
                "RuntimeError: Unsupported SM version for FP8 block scaling GEMM",
            )
    if config.engine == "mindie" and config.weight_dtype == "fp8":
        return Crash(
            CrashClass.UNSUPPORTED_BACKEND,
            "RuntimeError: MindIE does not support FP8 weights on this device (quantize to "
            "W8A8 INT8 with msModelSlim instead).",
        )
    return None


def _spec_decode(config: ServingConfig) -> Crash | None:
    if config.spec_method is None:
        return None
    k = config.spec_tokens
    if k < 1:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"ValueError: num_speculative_tokens must be positive when a speculative method "
            f"({config.spec_method}) is set, got {k}.",
        )
    need = config.max_num_seqs * (k + 1)
    if config.engine == "vllm" and config.max_num_batched_tokens < need:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"ValueError: max_num_batched_tokens ({config.max_num_batched_tokens}) must be at "
            f"least max_num_seqs * (num_speculative_tokens + 1) = {need} for speculative "
            "decoding.",
        )
    return None


def _fp8_block(config: ServingConfig) -> Crash | None:
    if config.weight_dtype != "fp8":
        return None
    model = config.model
    if model.is_moe:
        if config.expert_parallel and moe_shard_ranks(config) > 1:
            return None  # experts are split whole, their matrices are not sharded
        shard = model.moe_intermediate // moe_shard_ranks(config)
        if model.moe_intermediate % moe_shard_ranks(config) != 0 or shard % FP8_BLOCK != 0:
            return Crash(
                CrashClass.FP8_BLOCK_SHARD,
                f"ValueError: The output_size of gate's and up's weight = {shard} is not "
                f"divisible by weight quantization block_n = {FP8_BLOCK}.",
            )
        return None
    shard = model.intermediate // config.tensor_parallel
    if model.intermediate % config.tensor_parallel != 0 or shard % FP8_BLOCK != 0:
        return Crash(
            CrashClass.FP8_BLOCK_SHARD,
            f"ValueError: Weight output_partition_size = {shard} is not divisible by weight "
            f"quantization block_n = {FP8_BLOCK}.",
        )
    return None


def _scheduler_limits(config: ServingConfig) -> Crash | None:
    if config.engine != "vllm":
        return None
    b, s, m = config.max_num_batched_tokens, config.max_num_seqs, config.max_model_len
    if not config.chunked_prefill and b < m:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"ValueError: max_num_batched_tokens ({b}) is smaller than max_model_len ({m}). "
            "This effectively limits the maximum sequence length to max_num_batched_tokens "
            "and makes vLLM reject longer sequences. Please increase max_num_batched_tokens "
            "or decrease max_model_len.",
        )
    if b < s:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"ValueError: max_num_batched_tokens ({b}) must be greater than or equal to "
            f"max_num_seqs ({s}).",
        )
    return None


def _backends(config: ServingConfig) -> Crash | None:
    arch = gpu_arch(config)
    moe = config.moe_backend.lower()
    attn = config.attention_backend.lower()
    sm90_plus = arch in ("hopper", "blackwell")
    if config.engine == "vllm":
        if moe == "deep_gemm" and config.weight_dtype != "fp8":
            return _backend_crash(
                "ValueError: --moe-backend deep_gemm only supports FP8 block-quantized MoE "
                "weights, but the model's experts are unquantized (bfloat16)."
            )
        if moe in ("deep_gemm", "flashinfer_cutlass") and not sm90_plus:
            return _backend_crash(
                f"ValueError: --moe-backend {moe} requires compute capability 9.0 or newer "
                f"(Hopper/Blackwell); {config.gpu.name} is not supported."
            )
        if attn == "flash_attn" and arch in ("cdna3", "ascend"):
            return _backend_crash(
                f"ValueError: Selected attention backend FLASH_ATTN is not valid for this "
                f"platform ({config.gpu.name})."
            )
        return None
    if moe == "flashinfer_cutlass" and config.weight_dtype == "fp8":
        return _backend_crash(
            "AssertionError: Invalid quantization 'fp8'. FlashInfer Cutlass MOE "
            "(--moe-runner-backend flashinfer_cutlass) supports only: 'modelopt_fp4', "
            "'modelopt_fp8', or bf16 (None)."
        )
    if moe == "flashinfer_cutlass" and not sm90_plus:
        return _backend_crash(
            f"AssertionError: --moe-runner-backend flashinfer_cutlass requires SM90 or newer; "
            f"{config.gpu.name} is not supported."
        )
    if attn == "fa3" and arch != "hopper":
        return _backend_crash(
            f"AssertionError: FlashAttention v3 Backend (--attention-backend fa3) requires a "
            f"Hopper GPU (SM90); got {config.gpu.name}. Please use `--attention-backend "
            "flashinfer`."
        )
    return None


def _observed_failures(config: ServingConfig) -> Crash | None:
    """Engine failures that were observed but have no published log or mechanism, kept as a
    table so the search does not spend trials on them. Source: GPUStack performance lab,
    docs/performance-lab/qwen3-235b-a22b/h100.md section 4 (Qwen3-235B-A22B-Instruct-2507-FP8,
    TP4, 1xH100 node): VLLM_ATTENTION_BACKEND=FLASHINFER "Crash", =XFORMERS "Crash on
    inference". Scoped to what was observed: vLLM before 0.12 (the environment-variable era),
    block-FP8 MoE checkpoints."""
    if config.engine != "vllm" or version_tuple(config.engine_version) >= (0, 12):
        return None
    if config.weight_dtype != "fp8" or not config.model.is_moe:
        return None
    backend = config.attention_backend.lower()
    source = (
        "(observed: GPUStack performance lab, Qwen3-235B-A22B-Instruct-2507-FP8 TP4 on H100; "
        "no engine log was published)"
    )
    if backend == "flashinfer":
        return _backend_crash(
            f"RuntimeError: engine core failed to start with VLLM_ATTENTION_BACKEND=FLASHINFER "
            f"and a block-FP8 MoE checkpoint {source}"
        )
    if backend == "xformers":
        return Crash(
            CrashClass.UNSUPPORTED_BACKEND,
            f"RuntimeError: engine crashed on the first requests with "
            f"VLLM_ATTENTION_BACKEND=XFORMERS and a block-FP8 MoE checkpoint {source}",
            phase="load",
        )
    return None


def _backend_crash(message: str) -> Crash:
    return Crash(CrashClass.UNSUPPORTED_BACKEND, message)

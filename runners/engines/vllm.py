"""vLLM adapter (0.33): settings, hardware-dependent defaults, argument checks, launch command.

Facts from ENGINES.md §1.2-1.4: `EngineArgs.get_batch_defaults` (8192 batched tokens and 1024
sequences for `vllm serve` on >= 70 GiB non-A100 GPUs, 16384/1024 at >= 160 GiB, else
2048/256; `--performance-mode throughput` doubles only *defaulted* values; chunked prefill off
raises the token budget to max-model-len), gpu-memory-utilization 0.92, booleans as
``--enable-x`` / ``--disable-x`` pairs, and the exact `SchedulerConfig` error strings.
"""

from __future__ import annotations

from collections.abc import Mapping

from runners.catalog import GpuSpec, ModelSpec
from runners.engines.base import SettingInfo
from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    EngineName,
    NodeGroup,
    ServingConfig,
    SettingValue,
)

ATTENTION_BACKENDS = ("auto", "FLASH_ATTN", "FLASHINFER", "TRITON_ATTN", "FLEX_ATTENTION")
MOE_BACKENDS = (
    "auto",
    "triton",
    "deep_gemm",
    "cutlass",
    "flashinfer_cutlass",
    "flashinfer_trtllm",
    "marlin",
)
KV_CACHE_DTYPES = ("auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2")

_SETTINGS: dict[str, SettingInfo] = {
    info.name: info
    for info in (
        SettingInfo("tensor-parallel-size", "int", "tensor-parallel ranks", minimum=1),
        SettingInfo("data-parallel-size", "int", "data-parallel engine cores", minimum=1),
        SettingInfo(
            "enable-expert-parallel",
            "bool",
            "expert parallelism for MoE layers (EP size = TP x DP)",
            true_flag="--enable-expert-parallel",
            false_flag="--disable-expert-parallel",
        ),
        SettingInfo("max-model-len", "int", "context length (prompt + output)", minimum=1),
        SettingInfo(
            "gpu-memory-utilization",
            "float",
            "fraction of total GPU memory for weights, activations and KV cache",
            minimum=0.01,
            maximum=1.0,
        ),
        SettingInfo(
            "enable-chunked-prefill",
            "bool",
            "split long prefills across steps",
            true_flag="--enable-chunked-prefill",
            false_flag="--disable-chunked-prefill",
        ),
        SettingInfo("max-num-batched-tokens", "int", "token budget per step", minimum=1),
        SettingInfo("max-num-seqs", "int", "max running sequences per DP rank", minimum=1),
        SettingInfo(
            "enable-prefix-caching",
            "bool",
            "automatic prefix caching",
            true_flag="--enable-prefix-caching",
            false_flag="--disable-prefix-caching",
        ),
        SettingInfo("kv-cache-dtype", "choice", "KV cache storage dtype", KV_CACHE_DTYPES),
        SettingInfo("attention-backend", "choice", "attention kernels", ATTENTION_BACKENDS),
        SettingInfo("moe-backend", "choice", "MoE expert kernels", MOE_BACKENDS),
        SettingInfo(
            "performance-mode",
            "choice",
            "batch-default preset",
            ("balanced", "interactivity", "throughput"),
        ),
        SettingInfo(
            "async-scheduling",
            "bool",
            "overlap scheduling with execution",
            true_flag="--async-scheduling",
            false_flag="--no-async-scheduling",
        ),
        SettingInfo(
            "enforce-eager",
            "bool",
            "no torch.compile and no CUDA graphs",
            true_flag="--enforce-eager",
            false_flag="--no-enforce-eager",
        ),
        SettingInfo("block-size", "choice", "tokens per KV block", (16, 32, 64)),
    )
}


def _batch_defaults(gpu: GpuSpec) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) for `vllm serve` on this GPU (get_batch_defaults)."""
    if gpu.memory_gib_usable >= 160:
        return 16384, 1024
    if gpu.memory_gib_usable >= 70 and "a100" not in gpu.name.lower():
        return 8192, 1024
    return 2048, 256


class VllmAdapter:
    """vLLM 0.33 `vllm serve`."""

    name: EngineName = "vllm"
    versions: tuple[str, ...] = ("0.33.0",)

    def settings(self) -> Mapping[str, SettingInfo]:
        return _SETTINGS

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        chunked = bool(explicit.get("enable-chunked-prefill", True))
        mode = str(explicit.get("performance-mode", "balanced"))
        max_model_len = int(explicit.get("max-model-len", model.max_position_embeddings))
        default_tokens, default_seqs = _batch_defaults(gpu)
        if mode == "throughput":
            default_tokens, default_seqs = 2 * default_tokens, 2 * default_seqs
        seqs = int(explicit.get("max-num-seqs", default_seqs))
        if "max-num-batched-tokens" in explicit:
            tokens = int(explicit["max-num-batched-tokens"])
        else:
            tokens = default_tokens if chunked else max(max_model_len, default_tokens)
            tokens = min(seqs * max_model_len, tokens)
        if "max-num-seqs" not in explicit:
            seqs = min(seqs, tokens)
        return {
            "tensor-parallel-size": int(explicit.get("tensor-parallel-size", 1)),
            "data-parallel-size": int(explicit.get("data-parallel-size", 1)),
            "enable-expert-parallel": bool(explicit.get("enable-expert-parallel", False)),
            "max-model-len": max_model_len,
            "gpu-memory-utilization": float(explicit.get("gpu-memory-utilization", 0.92)),
            "enable-chunked-prefill": chunked,
            "max-num-batched-tokens": tokens,
            "max-num-seqs": seqs,
            "enable-prefix-caching": bool(explicit.get("enable-prefix-caching", True)),
            "kv-cache-dtype": str(explicit.get("kv-cache-dtype", "auto")),
            "attention-backend": str(explicit.get("attention-backend", "auto")),
            "moe-backend": str(explicit.get("moe-backend", "auto")),
            "performance-mode": mode,
            "async-scheduling": bool(explicit.get("async-scheduling", True)),
            "enforce-eager": bool(explicit.get("enforce-eager", False)),
            "block-size": int(explicit.get("block-size", 16)),
        }

    def validate(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> Crash | None:
        tokens = int(effective["max-num-batched-tokens"])
        seqs = int(effective["max-num-seqs"])
        max_model_len = int(effective["max-model-len"])
        world = self.gpus_per_instance(effective)
        if world > node_group.gpus_per_node:
            return Crash(
                CrashClass.TOO_MANY_GPUS,
                f"ValueError: World size ({world}) is larger than the number of available GPUs "
                f"({node_group.gpus_per_node}) in this node.",
            )
        if effective["enable-expert-parallel"] and not model.is_moe:
            return Crash(
                CrashClass.INVALID_CONFIG,
                "Number of experts in the model must be greater than 0 when expert parallelism "
                "is enabled.",
            )
        if not effective["enable-chunked-prefill"] and tokens < max_model_len:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"ValueError: max_num_batched_tokens ({tokens}) is smaller than max_model_len "
                f"({max_model_len}). This effectively limits the maximum sequence length to "
                "max_num_batched_tokens and makes vLLM reject longer sequences. Please increase "
                "max_num_batched_tokens or decrease max_model_len.",
            )
        if tokens < seqs:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"ValueError: max_num_batched_tokens ({tokens}) must be greater than or equal to "
                f"max_num_seqs ({seqs}).",
            )
        return None

    def to_serving_config(
        self,
        candidate: Candidate,
        effective: Mapping[str, SettingValue],
        model: ModelSpec,
        gpu: GpuSpec,
        node_group: NodeGroup,
    ) -> ServingConfig:
        seqs = int(effective["max-num-seqs"])
        tokens = int(effective["max-num-batched-tokens"])
        graph_cap = 1024 if gpu.memory_gib_usable >= 160 else 512
        kv_dtype = str(effective["kv-cache-dtype"])
        return ServingConfig(
            engine="vllm",
            engine_version=candidate.engine_version,
            model=model,
            gpu=gpu,
            weight_dtype=candidate.weight_dtype,
            tensor_parallel=int(effective["tensor-parallel-size"]),
            data_parallel=int(effective["data-parallel-size"]),
            expert_parallel=bool(effective["enable-expert-parallel"]),
            max_model_len=int(effective["max-model-len"]),
            mem_fraction=float(effective["gpu-memory-utilization"]),
            max_num_batched_tokens=tokens,
            max_num_seqs=seqs,
            chunked_prefill=bool(effective["enable-chunked-prefill"]),
            prefix_caching=bool(effective["enable-prefix-caching"]),
            kv_cache_dtype="fp8" if kv_dtype.startswith("fp8") else "bf16",
            attention_backend=str(effective["attention-backend"]).lower(),
            moe_backend=str(effective["moe-backend"]),
            cuda_graphs=not effective["enforce-eager"],
            cuda_graph_max_batch=min(seqs * 2, graph_cap, tokens),
            async_scheduling=bool(effective["async-scheduling"]),
            block_size=int(effective["block-size"]),
            replicas=max(1, node_group.gpus_per_node // self.gpus_per_instance(effective)),
        )

    def base_argv(self, candidate: Candidate) -> list[str]:
        return ["vllm", "serve", candidate.checkpoint]

    def port_flags(self, host: str, port: int) -> list[str]:
        return ["--host", host, "--port", str(port)]

    def gpus_per_instance(self, effective: Mapping[str, SettingValue]) -> int:
        return int(effective["tensor-parallel-size"]) * int(effective["data-parallel-size"])

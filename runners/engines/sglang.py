"""SGLang adapter (0.5.23): settings, memory-dependent defaults, argument checks, launch command.

Facts from ENGINES.md §3.2: chunked-prefill-size and the decode CUDA-graph batch default by
GPU memory (8192 and 256/512 below 90 GB), ``-1`` disables chunked prefill, mem-fraction-static
defaults to ``(memory - reserved) / memory`` with a 10 GB reserve floor on GPUs above 60 GB,
max-running-requests is derived from the KV pool when unset (left to the simulator: 0 here),
and EP is carved out of the TP group (``ep_size <= tp_size``).
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

ATTENTION_BACKENDS = ("auto", "fa3", "flashinfer", "triton", "torch_native", "flex_attention")
MOE_RUNNER_BACKENDS = (
    "auto",
    "triton",
    "triton_kernel",
    "deep_gemm",
    "cutlass",
    "flashinfer_cutlass",
    "flashinfer_trtllm",
)
KV_CACHE_DTYPES = ("auto", "bf16", "fp8_e4m3", "fp8_e5m2")

_SETTINGS: dict[str, SettingInfo] = {
    info.name: info
    for info in (
        SettingInfo("tp-size", "int", "tensor-parallel ranks", minimum=1),
        SettingInfo("dp-size", "int", "data-parallel replicas", minimum=1),
        SettingInfo("ep-size", "int", "expert-parallel ranks inside the TP group", minimum=1),
        SettingInfo("context-length", "int", "context length (prompt + output)", minimum=1),
        SettingInfo(
            "mem-fraction-static",
            "float",
            "fraction of GPU memory for weights and the KV pool",
            minimum=0.01,
            maximum=1.0,
        ),
        SettingInfo(
            "chunked-prefill-size",
            "int",
            "max tokens per prefill chunk; -1 disables chunked prefill",
            choices=(-1,),
            minimum=1,
        ),
        SettingInfo("max-prefill-tokens", "int", "max tokens in one prefill batch", minimum=1),
        SettingInfo("max-running-requests", "int", "max running requests", minimum=1),
        SettingInfo(
            "disable-radix-cache",
            "bool",
            "turn off the radix prefix cache",
            true_flag="--disable-radix-cache",
        ),
        SettingInfo("kv-cache-dtype", "choice", "KV cache storage dtype", KV_CACHE_DTYPES),
        SettingInfo("attention-backend", "choice", "attention kernels", ATTENTION_BACKENDS),
        SettingInfo("moe-runner-backend", "choice", "MoE kernels", MOE_RUNNER_BACKENDS),
        SettingInfo(
            "schedule-conservativeness",
            "float",
            "new-token reservation; larger retracts less",
            minimum=0.01,
        ),
        SettingInfo("cuda-graph-max-bs-decode", "int", "largest decode CUDA graph", minimum=1),
        SettingInfo(
            "disable-overlap-schedule",
            "bool",
            "turn off the overlap scheduler",
            true_flag="--disable-overlap-schedule",
        ),
    )
}


def _memory_defaults(gpu: GpuSpec, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, decode cuda_graph_max_bs) by GPU memory (memory_hook.py)."""
    gb = gpu.memory_gib_usable * 1.073741824
    if gb < 20:
        return 2048, 8
    if gb < 35:
        return 4096, 48 if tp < 4 else 160
    if gb < 60:
        return 4096, 32 if tp < 4 else 160
    if gb < 160:
        return 8192, 256 if tp < 4 else 512
    return 16384, 512


def _default_mem_fraction(gpu: GpuSpec, tp: int, chunk: int, graph_bs: int) -> float:
    """mem-fraction-static default: (memory - reserved) / memory, reserve in MiB."""
    total_mib = gpu.memory_gib_usable * 1024
    reserved_mib = 512 + 1.5 * max(chunk, 2048) + 2 * graph_bs + tp / 8 * 1024
    if total_mib > 60 * 1000:
        reserved_mib = max(reserved_mib, 10 * 1024)
    return round((total_mib - reserved_mib) / total_mib, 3)


class SglangAdapter:
    """SGLang 0.5.23 `python -m sglang.launch_server`."""

    name: EngineName = "sglang"
    versions: tuple[str, ...] = ("0.5.23",)

    def settings(self) -> Mapping[str, SettingInfo]:
        return _SETTINGS

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        tp = int(explicit.get("tp-size", 1))
        default_chunk, default_graph_bs = _memory_defaults(gpu, tp)
        chunk = int(explicit.get("chunked-prefill-size", default_chunk))
        graph_bs = int(explicit.get("cuda-graph-max-bs-decode", default_graph_bs))
        mem_fraction = explicit.get(
            "mem-fraction-static", _default_mem_fraction(gpu, tp, chunk, graph_bs)
        )
        return {
            "tp-size": tp,
            "dp-size": int(explicit.get("dp-size", 1)),
            "ep-size": int(explicit.get("ep-size", 1)),
            "context-length": int(explicit.get("context-length", model.max_position_embeddings)),
            "mem-fraction-static": float(mem_fraction),
            "chunked-prefill-size": chunk,
            "max-prefill-tokens": int(explicit.get("max-prefill-tokens", 16384)),
            "max-running-requests": int(explicit.get("max-running-requests", 0)),
            "disable-radix-cache": bool(explicit.get("disable-radix-cache", False)),
            "kv-cache-dtype": str(explicit.get("kv-cache-dtype", "auto")),
            "attention-backend": str(explicit.get("attention-backend", "auto")),
            "moe-runner-backend": str(explicit.get("moe-runner-backend", "auto")),
            "schedule-conservativeness": float(explicit.get("schedule-conservativeness", 1.0)),
            "cuda-graph-max-bs-decode": graph_bs,
            "disable-overlap-schedule": bool(explicit.get("disable-overlap-schedule", False)),
        }

    def validate(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> Crash | None:
        tp = int(effective["tp-size"])
        ep = int(effective["ep-size"])
        world = self.gpus_per_instance(effective)
        if world > node_group.gpus_per_node:
            return Crash(
                CrashClass.TOO_MANY_GPUS,
                f"RuntimeError: tp_size * dp_size = {world} exceeds the "
                f"{node_group.gpus_per_node} GPUs visible on this node.",
            )
        if ep > tp or tp % ep != 0:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"AssertionError: ep_size ({ep}) must divide tp_size ({tp}); expert parallelism "
                "is carved out of the tensor-parallel group.",
            )
        if ep > 1 and not model.is_moe:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"AssertionError: ep_size ({ep}) > 1 requires a MoE model; {model.name} is dense.",
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
        chunk = int(effective["chunked-prefill-size"])
        chunked = chunk > 0
        max_prefill = int(effective["max-prefill-tokens"])
        context = int(effective["context-length"])
        kv_dtype = str(effective["kv-cache-dtype"])
        return ServingConfig(
            engine="sglang",
            engine_version=candidate.engine_version,
            model=model,
            gpu=gpu,
            weight_dtype=candidate.weight_dtype,
            tensor_parallel=int(effective["tp-size"]),
            data_parallel=1,
            expert_parallel=int(effective["ep-size"]) > 1,
            max_model_len=context,
            mem_fraction=float(effective["mem-fraction-static"]),
            max_num_batched_tokens=chunk if chunked else max(max_prefill, context),
            max_num_seqs=int(effective["max-running-requests"]),
            chunked_prefill=chunked,
            prefix_caching=not effective["disable-radix-cache"],
            kv_cache_dtype="fp8" if kv_dtype.startswith("fp8") else "bf16",
            attention_backend=str(effective["attention-backend"]).lower(),
            moe_backend=str(effective["moe-runner-backend"]),
            cuda_graphs=True,
            cuda_graph_max_batch=int(effective["cuda-graph-max-bs-decode"]),
            async_scheduling=not effective["disable-overlap-schedule"],
            block_size=1,
            schedule_conservativeness=float(effective["schedule-conservativeness"]),
            replicas=max(1, node_group.gpus_per_node // self.gpus_per_instance(effective))
            * int(effective["dp-size"]),
        )

    def base_argv(self, candidate: Candidate) -> list[str]:
        return ["python", "-m", "sglang.launch_server", "--model-path", candidate.checkpoint]

    def port_flags(self, host: str, port: int) -> list[str]:
        return ["--host", host, "--port", str(port)]

    def gpus_per_instance(self, effective: Mapping[str, SettingValue]) -> int:
        return int(effective["tp-size"]) * int(effective["dp-size"])

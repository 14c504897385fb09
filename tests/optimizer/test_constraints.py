"""Static constraints: built-in rules, the safe expression language, user rules from a space."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from optimizer.constraints import violations
from optimizer.expressions import ExpressionError, evaluate, names, parse
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.types import Candidate, SettingValue

MODEL, BF16, FP8 = (
    "Qwen3-235B-A22B-Instruct-2507",
    "Qwen/Qwen3-235B-A22B-Instruct-2507",
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
)


def vllm(settings: dict[str, SettingValue], fp8: bool = False) -> Candidate:
    return Candidate.make(
        "vllm", "0.33.0", MODEL, FP8 if fp8 else BF16, "fp8" if fp8 else "bf16", settings
    )


def rules(spec: StudySpec, candidate: Candidate) -> list[str]:
    return [v.rule for v in violations(spec, candidate)]


def test_baseline_is_feasible(spec: StudySpec) -> None:
    assert violations(spec, vllm({"tensor-parallel-size": 8})) == []


@pytest.mark.parametrize(
    ("settings", "fp8", "rule"),
    [
        ({"tensor-parallel-size": 3}, False, "tp_heads"),
        ({"tensor-parallel-size": 8, "data-parallel-size": 2}, False, "gpus"),
        ({"tensor-parallel-size": 8}, True, "fp8_block_shard"),
        ({"max-num-batched-tokens": 2048, "max-num-seqs": 4096}, False, "batched_tokens_ge_seqs"),
        (
            {"enable-chunked-prefill": False, "max-num-batched-tokens": 16384},
            False,
            "chunked_off_budget",
        ),
    ],
)
def test_builtin_rules(
    spec: StudySpec, settings: dict[str, SettingValue], fp8: bool, rule: str
) -> None:
    assert rule in rules(spec, vllm(settings, fp8))


def test_expert_parallelism_avoids_the_fp8_shard_rule(spec: StudySpec) -> None:
    assert (
        rules(spec, vllm({"tensor-parallel-size": 8, "enable-expert-parallel": True}, True)) == []
    )


def test_violation_messages_say_why(spec: StudySpec) -> None:
    (found,) = violations(spec, vllm({"tensor-parallel-size": 8, "data-parallel-size": 2}))
    assert found.message == (
        "one instance needs TP x PP x DP = 8 x 1 x 2 = 16 GPUs; the node group has 8"
    )


def test_other_engines_rules(spec: StudySpec) -> None:
    trt = Candidate.make("trtllm", "1.2.0", MODEL, FP8, "fp8", {"tp_size": 8})
    assert rules(spec, trt) == ["fp8_block_shard"]
    trt_ep = Candidate.make("trtllm", "1.2.0", MODEL, FP8, "fp8", {"tp_size": 8, "ep_size": 8})
    assert rules(spec, trt_ep) == []
    sglang = Candidate.make("sglang", "0.5.23", MODEL, BF16, "bf16", {"tp-size": 8, "ep-size": 3})
    assert rules(spec, sglang) == ["engine_args"]


def test_user_rules_from_the_space(
    write_space: Callable[[dict[str, Any]], Path], shipped_space: dict[str, Any]
) -> None:
    shipped_space["engines"]["vllm"]["constraints"] = [
        {
            "name": "dp-needs-ep",
            "require": "data-parallel-size == 1 or enable-expert-parallel",
            "message": "data parallelism only with expert parallelism",
        }
    ]
    spec = load_spec(write_space(shipped_space))
    bad = vllm({"tensor-parallel-size": 4, "data-parallel-size": 2}, True)
    (found,) = [v for v in violations(spec, bad) if v.rule.startswith("user:")]
    assert (found.rule, found.message) == (
        "user:dp-needs-ep",
        "data parallelism only with expert parallelism",
    )
    good = vllm(
        {"tensor-parallel-size": 4, "data-parallel-size": 2, "enable-expert-parallel": True}, True
    )
    assert violations(spec, good) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 // 2 + 7 % 2", 4),
        ("-3 + 5", 2),
        ("a-b - 1", 9),
        ("heads % tp == 0 and not false", True),
        ("kind in ['fp8', 'auto']", True),
        ('kind == "bf16" or tp >= 8', True),
        ("1 / 4", 0.25),
    ],
)
def test_expressions(text: str, value: object) -> None:
    env = {"a-b": 10, "heads": 64, "tp": 8, "kind": "fp8"}
    assert evaluate(parse(text), env) == value


def test_names_are_collected() -> None:
    assert names(parse("max-num-seqs * 2 <= kv_cache_config.dtype + x")) == {
        "max-num-seqs",
        "kv_cache_config.dtype",
        "x",
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty"),
        ("1 +", "ends too early"),
        ("(1 + 2", "expected ')'"),
        ("1 < 2 < 3", "chained comparisons"),
        ("a $ b", "unexpected character '$'"),
        ("__import__('os')", "unexpected '('"),
    ],
)
def test_parse_errors(text: str, error: str) -> None:
    with pytest.raises(
        ExpressionError, match=error.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")
    ):
        parse(text)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("'a' * 2", "needs numbers"),
        ("1 / 0", "division by zero"),
        ("1 and true", "need true/false"),
        ("x + 1", "unknown name"),
    ],
)
def test_evaluation_errors(text: str, error: str) -> None:
    with pytest.raises(ExpressionError, match=error):
        evaluate(parse(text), {})

"""The pre-flight memory screen: clear memory failures from the simulator's plan, with margins."""

from __future__ import annotations

import dataclasses

from runners.catalog import get_gpu, get_model
from runners.sim.reference import reference_config
from runners.sim.screen import KV_MARGIN, assess_memory
from runners.types import ServingConfig


def config(**overrides: object) -> ServingConfig:
    return dataclasses.replace(reference_config(), **overrides)  # type: ignore[arg-type]


def test_engine_defaults_fit() -> None:
    verdict = assess_memory(config())
    assert verdict.fits and verdict.rule == "" and verdict.plan is not None
    assert verdict.margin == verdict.plan.margin > 0


def test_each_clear_failure_has_its_rule() -> None:
    cases = {
        "weights_oom": config(tensor_parallel=2),
        "no_kv_memory": config(mem_fraction=0.5),
        "runtime_oom": config(weight_dtype="fp8", tensor_parallel=4, max_num_batched_tokens=32768),
        "kv_below_max_model_len": config(mem_fraction=0.8),
    }
    for rule, case in cases.items():
        verdict = assess_memory(case)
        assert not verdict.fits and verdict.rule == rule, (rule, verdict)
        assert verdict.message


def test_nothing_left_outside_the_budget_is_no_headroom() -> None:
    verdict = assess_memory(config(mem_fraction=0.999))
    assert (verdict.fits, verdict.rule) == (False, "no_headroom")


def test_the_kv_boundary_is_left_to_the_engine_unless_strict() -> None:
    plan = assess_memory(config()).plan
    assert plan is not None
    edge = config(max_model_len=int(plan.kv_tokens * (1 + KV_MARGIN / 2)))
    assert assess_memory(edge).fits
    strict = assess_memory(edge, strict=True)
    assert (strict.fits, strict.rule) == (False, "kv_below_max_model_len")


def test_only_engines_deciding_at_the_kv_boundary_are_screened_for_it() -> None:
    sglang = config(engine="sglang", engine_version="0.5.23", max_num_seqs=0, mem_fraction=0.8)
    assert assess_memory(sglang).rule != "kv_below_max_model_len"


def test_a_cpu_device_is_not_screened() -> None:
    cpu = config(gpu=get_gpu("CPU-2core-AVX512"), model=get_model("tiny-qwen3-moe"))
    verdict = assess_memory(dataclasses.replace(cpu, mem_fraction=0.01, tensor_parallel=1))
    assert verdict.fits and verdict.plan is None

"""The memory boundary as margins and a crash probability (runners.sim.boundary, screen)."""

from __future__ import annotations

import dataclasses

import pytest

from runners.engines import resolve
from runners.sim.boundary import CERTAIN, RULE_SIGMA, crash_probability, rule_probability
from runners.sim.reference import reference_config
from runners.sim.screen import assess_memory
from runners.types import Candidate, NodeGroup, ServingConfig


def config(**overrides: object) -> ServingConfig:
    return dataclasses.replace(reference_config(), **overrides)  # type: ignore[arg-type]


def qwen3_32b_on_one_h100(max_model_len: int) -> ServingConfig:
    candidate = Candidate.make(
        "vllm", "0.11.0", "Qwen3-32B", "Qwen/Qwen3-32B", "bf16", {"max-model-len": max_model_len}
    )
    resolved = resolve(candidate, NodeGroup("h100x1", "H100-SXM-80GB", 1))
    assert isinstance(resolved, ServingConfig)
    return resolved


def test_every_rule_has_a_margin_and_defaults_have_slack_in_each() -> None:
    verdict = assess_memory(config())
    assert set(verdict.margins) == set(RULE_SIGMA)
    assert all(margin > 0 for margin in verdict.margins.values()), verdict.margins
    assert 0.0 < verdict.crash_probability < 0.5


def test_the_probability_is_one_half_at_the_boundary_and_falls_with_slack() -> None:
    for rule in RULE_SIGMA:
        assert rule_probability(rule, 0.0) == pytest.approx(0.5)
        inside, beyond = RULE_SIGMA[rule], -RULE_SIGMA[rule]
        assert rule_probability(rule, inside) < 0.5 < rule_probability(rule, beyond)
    assert rule_probability("runtime_oom", 1.0) < 1e-20
    assert rule_probability("runtime_oom", -1.0) > 0.999999


def test_the_largest_rule_probability_is_the_configurations() -> None:
    odds = crash_probability({"weights_oom": 0.2, "kv_below_max_model_len": -0.005})
    assert odds.rule == "kv_below_max_model_len"
    assert odds.probability == pytest.approx(rule_probability("kv_below_max_model_len", -0.005))


def test_the_probability_rises_with_the_context_length() -> None:
    lengths = (32768, 40960, 65536, 131072)
    odds = [assess_memory(qwen3_32b_on_one_h100(n)).crash_probability for n in lengths]
    assert odds == sorted(odds) and odds[0] < 0.5 < odds[1]


def test_near_the_boundary_is_rejected_by_rule_but_not_certain() -> None:
    near = assess_memory(qwen3_32b_on_one_h100(40960))
    assert (near.fits, near.rule) == (False, "kv_below_max_model_len")
    assert not near.certain and near.crash_probability < CERTAIN
    far = assess_memory(qwen3_32b_on_one_h100(131072))
    assert far.certain and far.crash_rule == "kv_below_max_model_len"


def test_weights_that_alone_exceed_the_gpu_are_certain() -> None:
    verdict = assess_memory(config(tensor_parallel=2))
    assert verdict.rule == "weights_oom" and verdict.certain
    assert verdict.margins["weights_oom"] < 0

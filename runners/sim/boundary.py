"""The memory boundary as margins and a crash probability, not a verdict.

Place in the data flow: `screen.assess_memory` (pre-flight) and predictors call `rule_margins`
on the `MemoryPlan` that `memory.plan_memory` made for a resolved `ServingConfig`, then
`crash_probability` on the margins. Every memory rule the simulator checks gets a margin:

    margin = (available - needed) / usable     (GiB over the GPU's usable memory)

so a positive margin is slack and a negative one a shortfall, in the same unit for every rule:

- ``weights_oom``: usable memory minus the weights and the non-torch memory;
- ``no_kv_memory``: the KV pool minus the engine's smallest KV pool (its minimum tokens);
- ``kv_below_max_model_len``: the KV pool minus one max-model-len sequence (engines that check
  the KV capacity at start only);
- ``no_headroom``: what is left outside the engine's budget (needed: nothing);
- ``runtime_oom``: that headroom minus the unprofiled peak of a full token-budget step.

The memory model is uncertain: each rule's estimate of available minus needed is off by an
error whose size, as a share of usable memory, is `RULE_SIGMA` (weights are read from the
checkpoint and known well; the KV pool depends on profiled activations and the runtime peak on
a fitted transient factor, both less certain). With a logistic error of scale sigma,

    p(rule) = 1 / (1 + exp(margin / sigma))

(0.5 at the boundary, 0.27 one sigma inside, 0.99 at 4.6 sigma beyond). The rules share one
uncertain quantity (how much memory is really there), so they are treated as fully dependent:
the configuration's crash probability is the largest rule probability, and that rule is named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from runners.catalog import GIB
from runners.engines import sim_policy
from runners.sim.memory import MemoryPlan
from runners.types import ServingConfig

RULE_SIGMA: dict[str, float] = {
    "weights_oom": 0.005,
    "no_kv_memory": 0.01,
    "kv_below_max_model_len": 0.01,
    "no_headroom": 0.01,
    "runtime_oom": 0.02,
}
"""Scale of the memory model's error per rule, as a share of the GPU's usable memory (0.01
of an 80 GB GPU is about 0.8 GiB: Qwen3-32B on one H100 at 40,960 tokens ran although the
model puts its KV pool 1.2 GiB short)."""

CERTAIN = 0.99
"""A crash probability at or above this is treated as certain (pre-flight with a real runner
rejects it; below it the configuration runs and its outcome is recorded)."""


@dataclass(frozen=True)
class CrashOdds:
    """The crash probability of a plan and the rule that carries it ("" when p is 0)."""

    probability: float
    rule: str


def rule_margins(config: ServingConfig, plan: MemoryPlan) -> dict[str, float]:
    """Every memory rule's margin, as a share of usable memory (see the module docstring)."""
    policy = sim_policy(config.engine)
    usable = plan.usable_gib
    min_tokens = max(policy.min_kv_tokens, policy.page_tokens(config))
    margins = {
        "weights_oom": usable - plan.weights_gib - plan.non_torch_gib,
        "no_kv_memory": plan.kv_gib - min_tokens * plan.kv_bytes_per_token / GIB,
        "no_headroom": plan.runtime_headroom_gib,
        "runtime_oom": plan.runtime_headroom_gib - plan.runtime_transient_gib,
    }
    if policy.kv_capacity_check != "none":
        needed = config.max_model_len * plan.kv_bytes_per_token / GIB
        margins["kv_below_max_model_len"] = plan.kv_gib - needed
    return {rule: gib / usable for rule, gib in margins.items()}


def rule_probability(rule: str, margin: float) -> float:
    """Logistic probability that `rule` fires, given its margin (share of usable memory)."""
    z = margin / RULE_SIGMA[rule]
    if z > 50.0:
        return 0.0
    if z < -50.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(z))


def crash_probability(margins: Mapping[str, float]) -> CrashOdds:
    """The largest rule probability (the rules share one uncertain quantity) and its rule."""
    best = CrashOdds(0.0, "")
    for rule, margin in margins.items():
        p = rule_probability(rule, margin)
        if p > best.probability:
            best = CrashOdds(p, rule)
    return best


__all__ = ["CERTAIN", "RULE_SIGMA", "CrashOdds", "crash_probability", "rule_margins"]

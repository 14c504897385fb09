"""The memory screen pre-flight runs before launching: clear memory failures, from the plan.

Place in the data flow: the optimizer's pre-flight calls `assess_memory` on a resolved
`ServingConfig` before any runner time is spent. It plans the memory exactly as the simulator
does (`memory.plan_memory`) and rejects what is clearly impossible: weights that do not fit,
no memory left for the KV cache, nothing left outside the engine's budget, a full token-budget
step whose unprofiled activations clearly exceed what is left (an out-of-memory under load),
and, for engines whose start decides the KV capacity near the memory model's uncertain boundary
(vLLM), max-model-len clearly above the KV capacity. Near a boundary (within `KV_MARGIN` and
`RUNTIME_MARGIN`) the engine decides, unless `strict` asks for what is clearly safe. The GPU
memory model is not applied to CPU devices (vLLM's CPU backend sizes its KV cache from
VLLM_CPU_KVCACHE_SPACE, not from a memory fraction), nor to an engine without a simulator policy
(there is no memory model for it; the assessment says so).

Every assessment with a plan also carries each rule's margin and the crash probability
(`runners.sim.boundary`), so a caller that can afford to learn from a run (a real runner) asks
`certain` instead of `fits`: only weights that alone exceed the GPU, or a crash probability of
at least `boundary.CERTAIN`, are certain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runners.engines import get_entry, sim_policy
from runners.sim.boundary import CERTAIN, crash_probability, rule_margins
from runners.sim.memory import MemoryPlan, plan_memory
from runners.types import ServingConfig

KV_MARGIN = 0.05
"""The memory model's uncertainty near the KV boundary (3-5% of the KV capacity)."""
RUNTIME_MARGIN = 0.08
"""Runtime peaks are less certain than the static plan: reject only clear cases."""


@dataclass(frozen=True)
class MemoryAssessment:
    """Whether `config` clearly fails for memory: `rule` (empty when it `fits`) names the
    failure (weights_oom, no_kv_memory, no_headroom, runtime_oom, kv_below_max_model_len),
    `message` says why, `margin` is the KV capacity's slack over max-model-len, relative
    ((kv_tokens - max_model_len) / max_model_len; 0 where no plan was made).

    `margins` holds every memory rule's margin as a share of usable memory, `crash_probability`
    the chance the engine fails for memory and `crash_rule` the rule that carries it
    (`runners.sim.boundary`); both are 0 / empty where no plan was made."""

    fits: bool
    rule: str = ""
    message: str = ""
    margin: float = 0.0
    plan: MemoryPlan | None = None
    crash_probability: float = 0.0
    crash_rule: str = ""
    margins: dict[str, float] = field(default_factory=dict)

    @property
    def certain(self) -> bool:
        """The configuration certainly fails for memory: its weights alone exceed the GPU's
        usable memory, or its crash probability is at least `CERTAIN`."""
        if self.plan is not None and self.plan.weights_gib > self.plan.usable_gib:
            return True
        return self.crash_probability >= CERTAIN


def assess_memory(config: ServingConfig, strict: bool = False) -> MemoryAssessment:
    """Reject what the memory model says is clearly impossible (`strict`: not clearly safe)."""
    if config.gpu.is_cpu:
        return MemoryAssessment(True, message="the GPU memory model does not apply to a CPU")
    if get_entry(config.engine).sim_policy is None:
        return MemoryAssessment(
            True, message=f"engine {config.engine!r} has no simulator policy: memory not screened"
        )
    plan = plan_memory(config)
    margins = rule_margins(config, plan)
    odds = crash_probability(margins)
    runtime_margin = -RUNTIME_MARGIN if strict else RUNTIME_MARGIN
    kv_margin = -KV_MARGIN if strict else KV_MARGIN

    def fails(rule: str, message: str) -> MemoryAssessment:
        return MemoryAssessment(
            False, rule, message, plan.margin, plan, odds.probability, odds.rule, margins
        )

    if plan.weights_gib + plan.non_torch_gib > plan.usable_gib:
        return fails(
            "weights_oom",
            f"{plan.weights_gib:.1f} GiB of weights per GPU do not fit in "
            f"{plan.usable_gib:.1f} GiB",
        )
    if plan.kv_gib <= 0:
        return fails(
            "no_kv_memory",
            f"no memory left for the KV cache ({plan.kv_gib:.1f} GiB after weights and "
            "activations); raise the memory fraction or use more GPUs",
        )
    if plan.runtime_headroom_gib < 0:
        return fails(
            "no_headroom",
            f"nothing is left outside the engine's memory budget for CUDA graphs and "
            f"activations ({plan.runtime_headroom_gib:.1f} GiB); lower the memory fraction",
        )
    if plan.runtime_transient_gib > plan.runtime_headroom_gib * (1.0 + runtime_margin):
        return fails(
            "runtime_oom",
            f"a full {config.max_num_batched_tokens}-token step needs about "
            f"{plan.runtime_transient_gib:.1f} GiB beyond the profiled budget but only "
            f"{plan.runtime_headroom_gib:.1f} GiB is left: out of memory under load; lower the "
            "token budget or the memory fraction",
        )
    ramp = sim_policy(config.engine).kv_capacity_check == "boundary_ramp"
    if ramp and plan.margin < -kv_margin:
        return fails(
            "kv_below_max_model_len",
            f"KV capacity {plan.kv_tokens} tokens per replica is below max-model-len "
            f"{config.max_model_len} beyond the memory model's uncertainty",
        )
    return MemoryAssessment(
        True,
        margin=plan.margin,
        plan=plan,
        crash_probability=odds.probability,
        crash_rule=odds.rule,
        margins=margins,
    )


__all__ = ["KV_MARGIN", "RUNTIME_MARGIN", "MemoryAssessment", "assess_memory"]

"""Static constraints on a candidate, checked before any trial is launched.

`violations(spec, candidate)` is a pure function: it resolves the candidate's settings to the
engine's effective values (defaults applied, through the engine adapter) and returns every rule
the candidate breaks, as `Violation(rule, message)`; an empty list means "may be launched".
Built-in rules come from the engine's registry entry (runners.engines.rule_breaks): ``tp_heads``
(TP divides the attention heads), ``gpus`` (TP x PP x DP fits the node group),
``fp8_block_shard`` (block-FP8 weights split into whole 128-wide blocks),
``batched_tokens_ge_seqs`` and ``chunked_off_budget`` (vLLM's scheduler checks); then
``engine_args`` (any other argument check of the engine adapter). User rules come from the
space file (``engines.<engine>.constraints``) and are named ``user:<name>``. The pre-flight
feasibility check calls this; `load_spec` uses `check_names` and `environment` to reject bad
expressions and a baseline that breaks a rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from optimizer.errors import ExpressionError
from optimizer.expressions import Value, evaluate, names
from optimizer.spec.models import StudySpec, UserRule
from runners.catalog import (
    GpuSpec,
    ModelSpec,
    Quantization,
    checkpoint_quantization,
    get_gpu,
    get_model,
)
from runners.engines import EngineAdapter, adapter_for, rule_breaks
from runners.types import Candidate, NodeGroup, SettingValue

FACTS = {
    "gpus": "GPUs in the node group",
    "gpus_per_node": "GPUs per node",
    "heads": "attention heads of the model",
    "kv_heads": "KV heads of the model",
    "experts": "routed experts of the model (0 = dense)",
    "layers": "decoder layers of the model",
    "max_position_embeddings": "the model's context limit",
    "fp8": "true when the FP8 checkpoint is chosen",
    "instance_gpus": "GPUs one engine instance uses (TP x PP x DP)",
}


@dataclass(frozen=True)
class Violation:
    """One broken rule: `rule` is a short id (``tp_heads``, ``user:<name>``), `message` why."""

    rule: str
    message: str


def environment(
    adapter: EngineAdapter,
    effective: Mapping[str, SettingValue],
    model: ModelSpec,
    node_group: NodeGroup,
    fp8: bool,
) -> dict[str, Value]:
    """Names a user expression can use: every effective setting plus the `FACTS`."""
    env: dict[str, Value] = dict(effective)
    env.update(
        gpus=node_group.total_gpus,
        gpus_per_node=node_group.gpus_per_node,
        heads=model.heads,
        kv_heads=model.kv_heads,
        experts=model.num_experts,
        layers=model.layers,
        max_position_embeddings=model.max_position_embeddings,
        fp8=fp8,
        instance_gpus=adapter.gpus_per_instance(effective, model),
    )
    return env


def check_names(rule: UserRule, adapter: EngineAdapter) -> str | None:
    """Why `rule` names something that is neither a setting of `adapter` nor a fact."""
    unknown = sorted(n for n in names(rule.tree) if n not in adapter.settings() and n not in FACTS)
    if not unknown:
        return None
    hint = ""
    if any("-" in n for n in unknown):
        hint = " (write subtraction with spaces: 'a - b')"
    return (
        f"unknown name{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}{hint}; "
        f"use {adapter.name} {adapter.version} settings or {', '.join(FACTS)}"
    )


def builtin_violations(
    adapter: EngineAdapter,
    effective: Mapping[str, SettingValue],
    model: ModelSpec,
    gpu: GpuSpec,
    node_group: NodeGroup,
    quantization: Quantization,
) -> list[Violation]:
    """The static rules pre-flight rejects on (the engine's registry entry holds them, with
    the engine's own text), plus the adapter's own argument checks."""
    breaks = rule_breaks(adapter, effective, model, gpu, node_group, quantization)
    found = [Violation(b.rule, b.crash.message) for b in breaks]
    if not found:
        crash = adapter.validate(effective, model, node_group)
        if crash is not None:
            found.append(Violation("engine_args", crash.message))
    return found


def user_violations(rules: tuple[UserRule, ...], env: Mapping[str, Value]) -> list[Violation]:
    """The user rules that do not hold (or cannot be evaluated) in `env`."""
    found: list[Violation] = []
    for rule in rules:
        try:
            holds = evaluate(rule.tree, env)
        except ExpressionError as exc:
            found.append(
                Violation(f"user:{rule.name}", f"{rule.text!r} cannot be evaluated: {exc}")
            )
            continue
        if holds is not True:
            message = rule.message or f"{rule.text!r} does not hold"
            found.append(Violation(f"user:{rule.name}", message))
    return found


def violations(spec: StudySpec, candidate: Candidate) -> list[Violation]:
    """Every static rule `candidate` breaks in `spec` (built-in and user-declared).

    The user rules are those of the candidate's engine section in `spec`. Pure: no I/O, no
    engine launched. An empty list means feasible so far.
    """
    adapter = adapter_for(candidate)
    model = get_model(candidate.model)
    node_group = spec.node_group
    gpu = get_gpu(node_group.gpu)
    effective = adapter.effective_settings(candidate.settings_dict(), model, gpu)
    fp8 = candidate.weight_dtype == "fp8"
    quantization = checkpoint_quantization(candidate.checkpoint, candidate.weight_dtype, model)
    found = builtin_violations(adapter, effective, model, gpu, node_group, quantization)
    section = spec.engines.get(candidate.engine)
    rules = section.rules if section is not None else ()
    if rules:
        env = environment(adapter, effective, model, node_group, fp8)
        found.extend(user_violations(rules, env))
    return found


__all__ = ["FACTS", "UserRule", "Violation", "check_names", "environment", "violations"]

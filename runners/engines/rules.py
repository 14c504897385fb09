"""Static rules: what an engine refuses at start, decided by the configuration and the model alone.

Place in the data flow: every engine entry lists its rules in order (shared ones from here, its
own from its folder). A rule looks at a `Subject` (the resolved `ServingConfig` and how one
instance is split) and returns the `Crash` the engine would die with (its class and the
engine's own error text), or None. The simulator records the first break as the runner's crash;
pre-flight records ``rejected:<rule id>`` for the rules marked `preflight`, before anything is
launched. The engine's argument checks (the adapter's `validate`) run before these, when the
candidate is resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runners.engines.parallel import Parallelism
from runners.types import Crash, CrashClass, NodeGroup, ServingConfig

FP8_BLOCK = 128
"""Block size of block-FP8 checkpoints (weight_block_size [128, 128]); shards must be whole."""


@dataclass(frozen=True)
class Subject:
    """What the rules look at: a resolved configuration, its split, and (pre-flight) the node
    group it must fit. `split` is the engine's own when resolved from settings; the simulator,
    given only a `ServingConfig`, rebuilds it with the engine's simulator policy."""

    config: ServingConfig
    split: Parallelism
    node_group: NodeGroup | None = None


RuleCheck = Callable[[Subject], Crash | None]


@dataclass(frozen=True)
class Rule:
    """One static rule: its id (what pre-flight records), its check, and whether pre-flight
    rejects on it (the others are left to the runner: the simulator crashes on them)."""

    id: str
    check: RuleCheck
    preflight: bool = False


@dataclass(frozen=True)
class RuleBreak:
    """A broken rule: its id and the crash the engine would report."""

    rule: str
    crash: Crash


def breaks(
    rules: Sequence[Rule], subject: Subject, preflight_only: bool = False
) -> list[RuleBreak]:
    """Every rule of `rules` that `subject` breaks, in rule order."""
    found: list[RuleBreak] = []
    for rule in rules:
        if preflight_only and not rule.preflight:
            continue
        crash = rule.check(subject)
        if crash is not None:
            found.append(RuleBreak(rule.id, crash))
    return found


def first_break(rules: Sequence[Rule], subject: Subject) -> RuleBreak | None:
    """The first rule `subject` breaks (what the engine dies of), or None."""
    for rule in rules:
        crash = rule.check(subject)
        if crash is not None:
            return RuleBreak(rule.id, crash)
    return None


# --- rules shared by several engines ------------------------------------------------------------


def model_len_rule(text: Callable[[int, int], str], preflight: bool = False) -> Rule:
    """max-model-len above the model's `max_position_embeddings`; `text(asked, limit)` is the
    engine's error text."""

    def check(subject: Subject) -> Crash | None:
        config = subject.config
        limit = config.model.max_position_embeddings
        if config.max_model_len <= limit:
            return None
        return Crash(CrashClass.MODEL_LEN, text(config.max_model_len, limit))

    return Rule("max_model_len", check, preflight)


def _tp_heads(subject: Subject) -> Crash | None:
    """TP must divide the attention heads; KV heads are split or replicated evenly (vLLM's
    `verify_with_parallel_config` and its attention layer's assertions)."""
    model, tp = subject.config.model, subject.split.tensor
    if model.heads % tp != 0:
        return Crash(
            CrashClass.TP_HEADS,
            f"ValueError: Total number of attention heads ({model.heads}) must be divisible "
            f"by tensor parallel size ({tp}).",
        )
    kv = model.kv_heads
    if tp <= kv and kv % tp != 0:
        return Crash(CrashClass.TP_HEADS, f"AssertionError: {kv} is not divisible by {tp}")
    if tp > kv and tp % kv != 0:
        return Crash(CrashClass.TP_HEADS, f"AssertionError: {tp} is not divisible by {kv}")
    return None


TP_HEADS = Rule("tp_heads", _tp_heads, preflight=True)


def _node_gpus(subject: Subject) -> Crash | None:
    """One instance must fit the node group (only known before launch: pre-flight)."""
    if subject.node_group is None:
        return None
    split, total = subject.split, subject.node_group.total_gpus
    if split.gpus <= total:
        return None
    return Crash(
        CrashClass.TOO_MANY_GPUS,
        f"one instance needs TP x PP x DP = {split.tensor} x {split.pipeline} x {split.data} = "
        f"{split.gpus} GPUs; the node group has {total}",
    )


NODE_GPUS = Rule("gpus", _node_gpus, preflight=True)


def nodes_divide_rule(text: Callable[[int, int], str]) -> Rule:
    """An instance over several nodes puts the same number of ranks on each: the nodes it spans
    must divide its GPUs; `text(nodes, gpus)` is the engine's error text."""

    def check(subject: Subject) -> Crash | None:
        config = subject.config
        gpus = config.gpus_per_replica
        if config.nodes == 1 or gpus % config.nodes == 0:
            return None
        return Crash(CrashClass.INVALID_CONFIG, text(config.nodes, gpus))

    return Rule("nodes_divide_world", check, preflight=True)


def _expert_parallel(subject: Subject) -> Crash | None:
    config = subject.config
    if config.expert_parallel and not config.model.is_moe:
        return Crash(
            CrashClass.INVALID_CONFIG,
            "ValueError: Number of experts in the model must be greater than 0 when expert "
            "parallelism is enabled.",
        )
    return None


EXPERT_PARALLEL = Rule("expert_parallel", _expert_parallel)


def _fp8_block_shard(subject: Subject) -> Crash | None:
    """Block-FP8 weights split across ranks must keep whole 128-wide blocks (vLLM's
    fp8_utils checks). Nothing is split when experts are placed whole or TP is 1; per-tensor
    FP8 has no blocks."""
    config, split = subject.config, subject.split
    if config.weight_dtype != "fp8" or config.weight_quant == "fp8-tensor":
        return None
    model = config.model
    width = model.moe_intermediate if model.is_moe else model.intermediate
    shards = split.moe_shards if model.is_moe else split.dense_shards
    if shards == 1:
        return None
    shard = width // shards
    if width % shards == 0 and shard % FP8_BLOCK == 0:
        return None
    if model.is_moe:
        text = (
            f"ValueError: The output_size of gate's and up's weight = {shard} is not divisible "
            f"by weight quantization block_n = {FP8_BLOCK}."
        )
    else:
        text = (
            f"ValueError: Weight output_partition_size = {shard} is not divisible by weight "
            f"quantization block_n = {FP8_BLOCK}."
        )
    return Crash(CrashClass.FP8_BLOCK_SHARD, text)


FP8_BLOCK_SHARD = Rule("fp8_block_shard", _fp8_block_shard, preflight=True)


def _spec_tokens(subject: Subject) -> Crash | None:
    config = subject.config
    if config.spec_method is None or config.spec_tokens >= 1:
        return None
    return Crash(
        CrashClass.INVALID_CONFIG,
        f"ValueError: num_speculative_tokens must be positive when a speculative method "
        f"({config.spec_method}) is set, got {config.spec_tokens}.",
    )


SPEC_TOKENS = Rule("spec_decode", _spec_tokens)


def backend_crash(message: str) -> Crash:
    return Crash(CrashClass.UNSUPPORTED_BACKEND, message)


def sm90_or_newer(config: ServingConfig) -> bool:
    """An NVIDIA GPU of compute capability 9.0 or newer (Hopper, Blackwell)."""
    capability = config.gpu.compute_capability
    return capability is not None and capability >= (9, 0)


__all__ = [
    "EXPERT_PARALLEL",
    "FP8_BLOCK",
    "FP8_BLOCK_SHARD",
    "NODE_GPUS",
    "SPEC_TOKENS",
    "TP_HEADS",
    "Rule",
    "RuleBreak",
    "Subject",
    "backend_crash",
    "breaks",
    "first_break",
    "model_len_rule",
    "nodes_divide_rule",
    "sm90_or_newer",
]

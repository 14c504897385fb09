"""TensorRT-LLM's argument checks and static rules, with its error texts.

Place in the data flow: `argument_checks` is what `trtllm-serve` refuses while it builds its
LLM arguments (run by the adapter when a candidate is resolved); `RULES` are the refusals when
the PyTorch backend loads the model, in order (the simulator crashes on the first; pre-flight
rejects on those marked `preflight`). The max-model-len wording is this tool's: no TensorRT-LLM
log of that failure was at hand.
"""

from __future__ import annotations

from collections.abc import Mapping

from runners.catalog import ModelSpec
from runners.engines.rules import (
    EXPERT_PARALLEL,
    FP8_BLOCK_SHARD,
    NODE_GPUS,
    SPEC_TOKENS,
    TP_HEADS,
    Rule,
    Subject,
    model_len_rule,
)
from runners.engines.topology import node_limit_crash
from runners.types import Crash, CrashClass, NodeGroup, SettingValue


def argument_checks(
    effective: Mapping[str, SettingValue],
    world: int,
    model: ModelSpec,
    node_group: NodeGroup,
    spans_nodes: bool = True,
) -> Crash | None:
    """What `trtllm-serve` refuses while it builds its LLM arguments, in its order (an instance
    larger than a node spans nodes through MPI when `spans_nodes`)."""
    tp, ep = int(effective["tp_size"]), int(effective["ep_size"])
    too_many = node_limit_crash(
        world,
        node_group,
        spans_nodes,
        f"RuntimeError: world_size ({world}) = tp_size x pp_size exceeds the "
        f"{node_group.gpus_per_node} GPUs of this node.",
    )
    if too_many is not None:
        return too_many
    if tp % ep != 0:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"ValueError: tp_size ({tp}) must be divisible by moe_expert_parallel_size ({ep}).",
        )
    if ep > 1 and not model.is_moe:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"ValueError: moe_expert_parallel_size ({ep}) > 1 needs a MoE model; "
            f"{model.name} is dense.",
        )
    decoding = effective["speculative_config.decoding_type"]
    if decoding != "none" and not effective["speculative_config.max_draft_len"]:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"ValueError: speculative_config.max_draft_len must be set for {decoding}.",
        )
    return None


def model_len_text(asked: int, limit: int) -> str:
    return (
        f"ValueError: max_seq_len ({asked}) is larger than the model's max_position_embeddings "
        f"({limit})."
    )


def _quantization(subject: Subject) -> Crash | None:
    """The PyTorch backend of 1.2: block-FP8 GEMMs need FP8 tensor cores (SM89+); AWQ/GPTQ
    checkpoints do not load (GPUStack Qwen3-14B/32B AWQ on A100)."""
    config = subject.config
    if config.weight_quant in ("awq", "gptq"):
        return Crash(CrashClass.INVALID_CONFIG, "KeyError: 'weight'")
    if config.weight_dtype == "fp8" and not config.gpu.has_fp8_compute:
        return Crash(
            CrashClass.UNSUPPORTED_BACKEND,
            "RuntimeError: Unsupported SM version for FP8 block scaling GEMM",
        )
    return None


RULES: tuple[Rule, ...] = (
    model_len_rule(model_len_text, preflight=True),
    TP_HEADS,
    NODE_GPUS,
    EXPERT_PARALLEL,
    Rule("quantization", _quantization),
    FP8_BLOCK_SHARD,
    SPEC_TOKENS,
)

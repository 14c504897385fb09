"""MindIE's argument checks and static rules, with its error texts.

Place in the data flow: `argument_checks` is what MindIE Service refuses in its config.json
(run by the adapter when a candidate is resolved); `RULES` are the refusals when it loads the
model, in order (the simulator crashes on the first; pre-flight rejects on those marked
`preflight`). The max-model-len wording is this tool's: no MindIE log of that failure was at
hand.
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
    effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
) -> Crash | None:
    """What MindIE Service refuses in its config.json, in its order."""
    world, ep = int(effective["worldSize"]), int(effective["moe_ep"])
    # MindIE spans nodes only with a rank table of every NPU's device IP, which a placement
    # cannot know: its instances stay within one node.
    too_many = node_limit_crash(
        world,
        node_group,
        False,
        f"worldSize ({world}) is larger than the {node_group.gpus_per_node} NPUs of "
        "this node (worldSize must equal the number of devices in npuDeviceIds).",
    )
    if too_many is not None:
        return too_many
    if world % ep != 0 or (ep > 1 and not model.is_moe):
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"moe_ep ({ep}) must divide worldSize ({world}) and needs a MoE model.",
        )
    if int(effective["maxInputTokenLen"]) > int(effective["maxSeqLen"]):
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"maxInputTokenLen ({effective['maxInputTokenLen']}) must not exceed maxSeqLen "
            f"({effective['maxSeqLen']}).",
        )
    return None


def model_len_text(asked: int, limit: int) -> str:
    return f"maxSeqLen ({asked}) is larger than the model's max_position_embeddings ({limit})."


def _no_fp8(subject: Subject) -> Crash | None:
    """Ascend NPUs have no FP8; MindIE quantizes to W8A8 INT8 instead."""
    if subject.config.weight_dtype != "fp8":
        return None
    return Crash(
        CrashClass.UNSUPPORTED_BACKEND,
        "RuntimeError: MindIE does not support FP8 weights on this device (quantize to "
        "W8A8 INT8 with msModelSlim instead).",
    )


RULES: tuple[Rule, ...] = (
    model_len_rule(model_len_text, preflight=True),
    TP_HEADS,
    NODE_GPUS,
    EXPERT_PARALLEL,
    Rule("quantization", _no_fp8),
    FP8_BLOCK_SHARD,
    SPEC_TOKENS,
)

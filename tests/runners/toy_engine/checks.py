"""The toy engine's argument checks and static rules (shared rules plus its own texts)."""

from __future__ import annotations

from collections.abc import Mapping

from runners.engines.rules import FP8_BLOCK_SHARD, NODE_GPUS, TP_HEADS, Rule, model_len_rule
from runners.types import Crash, CrashClass, NodeGroup, SettingValue


def argument_checks(effective: Mapping[str, SettingValue], node_group: NodeGroup) -> Crash | None:
    workers = int(effective["workers"])
    if workers > node_group.gpus_per_node:
        return Crash(
            CrashClass.TOO_MANY_GPUS,
            f"RuntimeError: toy: {workers} workers do not fit on {node_group.gpus_per_node} "
            "devices",
        )
    if int(effective["max-batch"]) > int(effective["max-tokens"]):
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"ValueError: toy: max-batch ({effective['max-batch']}) exceeds max-tokens "
            f"({effective['max-tokens']})",
        )
    return None


def _model_len_text(asked: int, limit: int) -> str:
    return f"ValueError: toy: context {asked} is above the model's {limit} positions"


RULES: tuple[Rule, ...] = (
    model_len_rule(_model_len_text),
    TP_HEADS,
    NODE_GPUS,
    FP8_BLOCK_SHARD,
)

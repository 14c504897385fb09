"""SGLang's argument checks and static rules, with SGLang's own error texts.

Place in the data flow: `argument_checks` is what `sglang.launch_server` refuses while it
validates its `ServerArgs` (run by the adapter when a candidate is resolved); `RULES` are the
refusals at model initialisation, in order (the simulator crashes on the first; pre-flight
rejects on those marked `preflight`).
"""

from __future__ import annotations

from collections.abc import Mapping

from runners.catalog import Architecture, ModelSpec
from runners.engines.rules import (
    EXPERT_PARALLEL,
    FP8_BLOCK_SHARD,
    NODE_GPUS,
    SPEC_TOKENS,
    TP_HEADS,
    Rule,
    Subject,
    backend_crash,
    model_len_rule,
    nodes_divide_rule,
    sm90_or_newer,
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
    """What SGLang refuses while it checks its server arguments, in its order (an instance
    larger than a node spans nodes with ``--nnodes`` when `spans_nodes`)."""
    tp = int(effective["tp-size"])
    ep = int(effective["ep-size"])
    too_many = node_limit_crash(
        world,
        node_group,
        spans_nodes,
        f"RuntimeError: tp_size * pp_size * dp_size = {world} exceeds the "
        f"{node_group.gpus_per_node} GPUs visible on this node.",
    )
    if too_many is not None:
        return too_many
    if ep > tp or tp % ep != 0:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"AssertionError: ep_size ({ep}) must divide tp_size ({tp}); expert parallelism "
            "is carved out of the tensor-parallel group.",
        )
    if ep > 1 and not model.is_moe:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"AssertionError: ep_size ({ep}) > 1 requires a MoE model; {model.name} is dense.",
        )
    attn_dp = int(effective.get("attn-dp-size", 1))
    if effective["enable-dp-attention"]:
        attn_dp = int(effective["dp-size"])
    if tp % attn_dp != 0:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"AssertionError: tp_size ({tp}) must be divisible by the attention "
            f"data-parallel size ({attn_dp}).",
        )
    return None


def model_len_text(asked: int, limit: int) -> str:
    return (
        f"ValueError: User-specified context_length ({asked}) is greater than the derived "
        f"context_length ({limit}). This may lead to incorrect model outputs or CUDA errors. "
        "Note that the derived context_length may differ from max_position_embeddings in the "
        "model's config. To allow overriding this maximum, set the env var "
        "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"
    )


def _backends(subject: Subject) -> Crash | None:
    """FlashInfer CUTLASS MoE takes no block-FP8 and needs SM90+; FA3 needs Hopper."""
    config = subject.config
    moe = config.moe_backend.lower()
    if moe == "flashinfer_cutlass" and config.weight_dtype == "fp8":
        return backend_crash(
            "AssertionError: Invalid quantization 'fp8'. FlashInfer Cutlass MOE "
            "(--moe-runner-backend flashinfer_cutlass) supports only: 'modelopt_fp4', "
            "'modelopt_fp8', or bf16 (None)."
        )
    if moe == "flashinfer_cutlass" and not sm90_or_newer(config):
        return backend_crash(
            f"AssertionError: --moe-runner-backend flashinfer_cutlass requires SM90 or newer; "
            f"{config.gpu.name} is not supported."
        )
    if (
        config.attention_backend.lower() == "fa3"
        and config.gpu.architecture is not Architecture.HOPPER
    ):
        return backend_crash(
            f"AssertionError: FlashAttention v3 Backend (--attention-backend fa3) requires a "
            f"Hopper GPU (SM90); got {config.gpu.name}. Please use `--attention-backend "
            "flashinfer`."
        )
    return None


def nodes_divide_text(nodes: int, ranks: int) -> str:
    """TP x PP ranks the nodes must share evenly (the wording is this tool's: no SGLang log of
    this failure was at hand)."""
    return (
        f"AssertionError: tp_size * pp_size ({ranks}) must be divisible by the number of nodes "
        f"(--nnodes {nodes})."
    )


RULES: tuple[Rule, ...] = (
    model_len_rule(model_len_text, preflight=True),
    TP_HEADS,
    NODE_GPUS,
    nodes_divide_rule(nodes_divide_text),
    EXPERT_PARALLEL,
    FP8_BLOCK_SHARD,
    SPEC_TOKENS,
    Rule("backend", _backends),
)

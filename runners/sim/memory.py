"""Per-GPU memory planning and the memory crash rules.

Second gate of `simulate`, after `rules.check_config`: `plan_memory` turns a `ServingConfig`
into a `MemoryPlan` (weights, profiled activations, KV pool and its capacity in tokens), pure
arithmetic that never fails; `check_memory` then decides, with the engine's real error text,
whether the engine would die loading weights, find no KV memory, refuse max_model_len, fail to
capture CUDA graphs, or crash later under load. Decisions near a boundary use a seeded logistic
perturbation of the available memory (half-width: the calibrated ``boundary_delta``), so they
are deterministic for a seed. The scheduler consumes `MemoryPlan.kv_tokens`. What differs per
engine comes from its simulator policy (runners/engines/<name>/policy.py): the budget semantics
(vLLM takes a fraction of total memory for everything, SGLang a static fraction for weights +
KV, TensorRT-LLM and MindIE a fraction of the memory still free after weights and warm-up, or
an explicit size), the KV page, which capacity checks the engine makes and its error texts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runners.catalog import FORMATS, GIB, ModelSpec, QuantFormat
from runners.catalog.quant import FORMAT_FACTS
from runners.engines import SimPolicy, sim_policy
from runners.engines.policy import MemoryFacts, torch_oom_text
from runners.sim import params
from runners.types import Crash, CrashClass, ServingConfig


@dataclass(frozen=True)
class MemoryPlan:
    """Memory of one GPU of one engine instance, in GiB, and the resulting KV capacity.

    `kv_tokens` is the KV capacity of one engine core (one vLLM DP rank; what the engine logs
    as "GPU KV cache size"), `kv_tokens_per_replica` of the whole instance (x DP for vLLM).
    `margin` = (kv_tokens - max_model_len) / max_model_len. `runtime_headroom_gib` is what is
    left outside the engine's budget after CUDA graphs; `runtime_transient_gib` is the
    unprofiled peak a full `max_num_batched_tokens` step needs from it.
    """

    usable_gib: float
    budget_gib: float
    weights_gib: float
    activation_gib: float
    non_torch_gib: float
    cuda_graph_gib: float
    kv_gib: float
    kv_bytes_per_token: int
    kv_tokens: int
    kv_tokens_per_replica: int
    margin: float
    runtime_headroom_gib: float
    runtime_transient_gib: float
    transient_factor: float = 1.0


def checkpoint_format(config: ServingConfig) -> QuantFormat:
    """The format of the checkpoint's (non-expert) weights."""
    quant = config.weight_quant
    if quant == "fp8-tensor":
        return "fp8"
    if quant in FORMATS:
        return quant
    return "fp8" if config.weight_dtype == "fp8" else "bf16"


def weight_bytes_per_param(config: ServingConfig) -> tuple[float, float]:
    """(dense, routed-expert) bytes per weight: BF16 2, FP8 and INT8 1, 4-bit formats ~0.53
    to 0.56 with their scales; a checkpoint that quantizes only its experts (gpt-oss MXFP4)
    gives their bits on the model."""
    dense = FORMAT_FACTS[checkpoint_format(config)].weight_bytes
    bits = config.model.expert_weight_bits
    expert = bits / 8.0 if bits > 0 else dense
    return dense, expert


def attention_params_per_gpu(m: ModelSpec, tp: int) -> float:
    """Attention weights one TP rank holds per layer: q/o sharded, k/v replicated beyond TP =
    kv_heads; MLA's down-projections (to the query and KV latents) replicated, its
    up-projections and output sharded."""
    if m.mla is None:
        d = m.head_dim
        return 2 * m.hidden * m.heads * d / tp + 2 * m.hidden * m.kv_heads_per_gpu(tp) * d
    mla, h = m.mla, m.hidden
    replicated = h * mla.q_lora_rank + h * mla.latent_width
    q_up = (mla.q_lora_rank or h) * m.heads * mla.qk_head_dim
    kv_up = mla.kv_lora_rank * m.heads * (mla.qk_nope_head_dim + mla.v_head_dim)
    return replicated + (q_up + kv_up + m.heads * mla.v_head_dim * h) / tp


def weight_bytes_per_gpu(config: ServingConfig) -> float:
    """Weights on one GPU: non-expert params / TP + expert params / (TP*DP); quantized
    checkpoints keep embeddings, LM head and the router in BF16; KV projections replicate
    beyond TP=kv_heads; a MoE model's leading dense layers hold a dense MLP instead; with
    pipeline stages, the fullest stage's layers and the embedding or the LM head."""
    m, tp = config.model, config.tensor_parallel
    w, w_expert = weight_bytes_per_param(config)
    attention = attention_params_per_gpu(m, tp) * w
    per_layer = attention
    if m.is_moe:
        per_layer += m.hidden * m.num_experts * 2.0  # router, replicated, BF16
        per_layer += m.expert_params_per_layer * w_expert / _moe_ranks(config)
        if m.shared_expert_intermediate:
            per_layer += m.shared_expert_params_per_layer * w / tp
    else:
        per_layer += 3 * m.hidden * m.intermediate * w / tp
    embeddings = m.embedding_params * 2.0 / tp
    if m.dense_layers:
        dense_layer = attention + 3 * m.hidden * m.intermediate * w / tp
        layers = m.moe_layers * per_layer + m.dense_layers * dense_layer
    else:
        layers = m.layers * per_layer
    if config.pipeline_parallel > 1:
        # the fullest stage: its share of the layers and (first or last stage) the embedding
        # or the LM head
        return layers * stage_share(config) + (embeddings if m.tied_embeddings else embeddings / 2)
    return layers + embeddings


def stage_share(config: ServingConfig) -> float:
    """The share of the decoder layers the fullest pipeline stage holds (1 without PP)."""
    layers, stages = config.model.layers, config.pipeline_parallel
    return -(-layers // stages) / layers


def kv_bytes_per_token(config: ServingConfig, kv_bytes: int) -> int:
    """KV-cache bytes per token on one GPU: its TP rank's heads (an MLA latent on every rank)
    in the layers of its pipeline stage (the fullest one)."""
    full = config.model.kv_bytes_per_token_per_gpu(config.tensor_parallel, kv_bytes)
    if config.pipeline_parallel == 1:
        return full
    layers = config.model.layers
    stage_layers = -(-layers // config.pipeline_parallel)
    return -(-full * stage_layers // layers)


def activation_bytes(config: ServingConfig) -> float:
    """Profiled activation peak: a dummy forward with max_num_batched_tokens, then a dummy
    sampler run over max_num_seqs rows."""
    m = config.model
    t_max = config.max_num_batched_tokens
    if m.is_moe:
        wide = params.ACT_MOE_COEF * m.experts_per_token * m.moe_intermediate
        wide /= _moe_ranks(config) if not config.expert_parallel else 1
        if m.dense_layers:
            wide = max(wide, params.ACT_MOE_COEF * m.intermediate / config.tensor_parallel)
    else:
        wide = params.ACT_MOE_COEF * m.intermediate / config.tensor_parallel
    forward = t_max * (params.ACT_H_COEF * m.hidden + wide) * 2.0
    seqs = config.max_num_seqs if config.max_num_seqs > 0 else 1024
    # The dummy sampler run (fp32 logits) follows the dummy forward, whose intermediates are
    # freed by then: the profiled peak is the larger of the two, not their sum.
    sampler = seqs * (m.vocab * 4.0 + m.hidden * 2.0)
    return max(forward, sampler, params.ACT_MIN_GIB * GIB)


def transient_bytes(config: ServingConfig, factor: float) -> float:
    """Unprofiled runtime peak of a full-budget step (fused-MoE permutation buffers)."""
    m = config.model
    t_max = config.max_num_batched_tokens
    if m.is_moe:
        act_copy = m.hidden * (3.0 if config.weight_dtype == "fp8" else 2.0)
        shard = _moe_ranks(config) if not config.expert_parallel else 1
        inter = 2.0 * m.moe_intermediate / shard * 2.0
        per_token = m.experts_per_token * (act_copy + inter)
    else:
        per_token = 2.0 * m.hidden * 2.0
    return factor * t_max * per_token


def _moe_ranks(config: ServingConfig) -> int:
    return sim_policy(config.engine).moe_shard_ranks(config)


def plan_memory(config: ServingConfig, calib: params.Calibration | None = None) -> MemoryPlan:
    """Memory accounting per GPU, by the engine's budget semantics (vLLM: fraction of total
    for everything but CUDA graphs; SGLang: static fraction for weights + KV, everything
    dynamic outside it; TensorRT-LLM and MindIE: fraction of what is free after weights,
    activations and graphs)."""
    calib = calib or params.fitted_calibration()
    policy = sim_policy(config.engine)
    usable = config.gpu.memory_bytes * calib.efficiency(config.gpu).usable_scale
    weights = weight_bytes_per_gpu(config)
    act = activation_bytes(config)
    ranks = config.gpus_per_replica
    non_torch = (params.NON_TORCH_GIB + (params.NCCL_BUFFER_GIB if ranks > 1 else 0.0)) * GIB
    non_torch += params.ATTENTION_WORKSPACE_GIB.get(config.attention_backend.lower(), 0.0) * GIB
    graph_bs = min(config.cuda_graph_max_batch, max(config.max_num_seqs, 1))
    graphs = (
        (params.CUDA_GRAPH_BASE_GIB + params.CUDA_GRAPH_PER_SEQ_GIB * graph_bs) * GIB
        if config.cuda_graphs
        else 0.0
    )
    budget = config.mem_fraction * usable
    explicit_kv = config.kv_cache_gib * GIB if policy.explicit_kv_size else 0.0
    if policy.budget == "static_weights_and_kv":
        kv = budget - weights
        headroom = usable - budget - graphs - act - non_torch
    elif policy.budget == "fraction_of_free":
        free = usable - weights - act - non_torch - graphs
        kv = explicit_kv if explicit_kv > 0 else config.mem_fraction * free
        budget = weights + act + non_torch + kv
        headroom = free - kv
    else:
        kv = explicit_kv if explicit_kv > 0 else budget - weights - act - non_torch
        headroom = usable - budget - graphs
    page = policy.page_tokens(config)
    kv_kind = 1 if config.kv_cache_dtype == "fp8" else 2
    kvb = kv_bytes_per_token(config, kv_kind)
    blocks = max(0, math.floor(kv / (page * kvb)))
    kv_tokens = blocks * page
    factor = calib.scalar("runtime_transient_factor")
    return MemoryPlan(
        usable_gib=usable / GIB,
        budget_gib=budget / GIB,
        weights_gib=weights / GIB,
        activation_gib=act / GIB,
        non_torch_gib=non_torch / GIB,
        cuda_graph_gib=graphs / GIB,
        kv_gib=kv / GIB,
        kv_bytes_per_token=kvb,
        kv_tokens=kv_tokens,
        kv_tokens_per_replica=kv_tokens * policy.engine_cores(config),
        margin=(kv_tokens - config.max_model_len) / config.max_model_len,
        runtime_headroom_gib=headroom / GIB,
        runtime_transient_gib=transient_bytes(config, factor) / GIB,
        transient_factor=factor,
    )


def boundary_noise(rng: np.random.Generator, count: int, delta: float) -> list[float]:
    """Relative perturbations of available memory: logistic, scale delta/4, clipped to +-delta."""
    u = np.clip(rng.random(count), 1e-12, 1.0 - 1e-12)
    eps = (delta / 4.0) * np.log(u / (1.0 - u))
    return [float(x) for x in np.clip(eps, -delta, delta)]


def memory_facts(plan: MemoryPlan) -> MemoryFacts:
    """The numbers of `plan` that the engines' crash texts quote."""
    return MemoryFacts(
        usable_gib=plan.usable_gib,
        kv_gib=plan.kv_gib,
        kv_tokens=plan.kv_tokens,
        kv_bytes_per_token=plan.kv_bytes_per_token,
        headroom_gib=plan.runtime_headroom_gib,
        transient_gib=plan.runtime_transient_gib,
        transient_factor=plan.transient_factor,
    )


def check_memory(
    config: ServingConfig,
    plan: MemoryPlan,
    rng: np.random.Generator,
    calib: params.Calibration | None = None,
) -> Crash | None:
    """The memory crash this config hits (startup first, then under load), or None."""
    calib = calib or params.fitted_calibration()
    policy = sim_policy(config.engine)
    eps_kv, eps_runtime = boundary_noise(rng, 2, calib.scalar("boundary_delta"))
    if plan.weights_gib + plan.non_torch_gib > plan.usable_gib:
        return _weights_oom(config, plan)
    if plan.kv_gib <= 0 or plan.kv_tokens < policy.min_kv_tokens:
        return Crash(CrashClass.NO_KV_MEMORY, policy.no_kv_text(config))
    too_small = _kv_capacity_crash(config, plan, policy, eps_kv)
    if too_small is not None:
        return too_small
    if policy.startup_headroom_crash and plan.runtime_headroom_gib < 0:
        text = policy.startup_oom_text(config, memory_facts(plan))
        return Crash(CrashClass.RUNTIME_OOM, text, phase="startup")
    headroom = plan.runtime_headroom_gib * (1.0 + eps_runtime)
    if headroom < plan.runtime_transient_gib:
        text = torch_oom_text(memory_facts(plan), config.max_num_batched_tokens)
        return Crash(CrashClass.RUNTIME_OOM, text, phase="load")
    return None


def _kv_capacity_crash(
    config: ServingConfig, plan: MemoryPlan, policy: SimPolicy, eps_kv: float
) -> Crash | None:
    """The KV cache cannot hold one max-model-len sequence: exactly, or (vLLM) with the
    seeded ramp of the memory model's uncertainty near the boundary."""
    if policy.kv_capacity_check == "exact":
        if plan.kv_tokens >= config.max_model_len:
            return None
        available = plan.kv_gib
    elif policy.kv_capacity_check == "boundary_ramp":
        available = plan.kv_gib * (1.0 + eps_kv)
        if available >= config.max_model_len * plan.kv_bytes_per_token / GIB:
            return None
    else:
        return None
    text = policy.kv_too_small_text(config, memory_facts(plan), available)
    return Crash(CrashClass.KV_TOO_SMALL, text)


def _weights_oom(config: ServingConfig, plan: MemoryPlan) -> Crash:
    m = config.model
    w, w_expert = weight_bytes_per_param(config)
    if m.is_moe:
        chunk = m.expert_params_per_layer * w_expert / _moe_ranks(config)
    else:
        chunk = 3 * m.hidden * m.intermediate * w / config.tensor_parallel
    free_mib = max(0.0, plan.usable_gib * 1024 * 0.004)
    in_use = plan.usable_gib - free_mib / 1024
    msg = (
        f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {chunk / 2**20:.2f} MiB. "
        f"GPU 0 has a total capacity of {plan.usable_gib:.2f} GiB of which {free_mib:.2f} MiB "
        f"is free. Including non-PyTorch memory, this process has {in_use:.2f} GiB memory in "
        f"use. Of the allocated memory {in_use - plan.non_torch_gib:.2f} GiB is allocated by "
        "PyTorch, and 0 bytes is reserved by PyTorch but unallocated. (while loading "
        f"{plan.weights_gib:.2f} GiB of weights per GPU)"
    )
    return Crash(CrashClass.WEIGHTS_OOM, msg)

"""Per-GPU memory planning and the memory crash rules (SIMULATOR.md §5).

Second gate of `simulate`, after `rules.check_config`: `plan_memory` turns a `ServingConfig`
into a `MemoryPlan` (weights, profiled activations, KV pool and its capacity in tokens), pure
arithmetic that never fails; `check_memory` then decides, with the engine's real error text,
whether the engine would die loading weights, find no KV memory, refuse max_model_len, fail to
capture CUDA graphs, or crash later under load. Decisions near a boundary use a seeded logistic
perturbation of the available memory (half-width: the calibrated ``boundary_delta``), so they
are deterministic for a seed. The scheduler consumes `MemoryPlan.kv_tokens`. Budget semantics
differ per engine: vLLM takes a fraction of total memory for everything, SGLang a static
fraction for weights + KV, TensorRT-LLM and MindIE a fraction of the memory still free after
weights and warm-up (MindIE: or an explicit npuMemSize).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runners.catalog import GIB
from runners.sim import params
from runners.sim.rules import moe_shard_ranks, version_tuple, weight_bytes_per_param
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


def weight_bytes_per_gpu(config: ServingConfig) -> float:
    """Weights on one GPU: non-expert params / TP + expert params / (TP*DP); FP8 keeps
    embeddings, LM head and the router in BF16; KV projections replicate beyond TP=kv_heads."""
    m, tp = config.model, config.tensor_parallel
    w, w_expert = weight_bytes_per_param(config)
    d = m.head_dim
    qo = 2 * m.hidden * m.heads * d / tp
    kv = 2 * m.hidden * m.kv_heads_per_gpu(tp) * d
    per_layer = (qo + kv) * w
    if m.is_moe:
        per_layer += m.hidden * m.num_experts * 2.0  # router, replicated, BF16
        per_layer += m.expert_params_per_layer * w_expert / moe_shard_ranks(config)
    else:
        per_layer += 3 * m.hidden * m.intermediate * w / tp
    embeddings = m.embedding_params * 2.0 / tp
    return m.layers * per_layer + embeddings


def activation_bytes(config: ServingConfig) -> float:
    """Profiled activation peak: a dummy forward with max_num_batched_tokens, then a dummy
    sampler run over max_num_seqs rows."""
    m = config.model
    t_max = config.max_num_batched_tokens
    if m.is_moe:
        wide = params.ACT_MOE_COEF * m.experts_per_token * m.moe_intermediate
        wide /= moe_shard_ranks(config) if not config.expert_parallel else 1
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
        shard = moe_shard_ranks(config) if not config.expert_parallel else 1
        inter = 2.0 * m.moe_intermediate / shard * 2.0
        per_token = m.experts_per_token * (act_copy + inter)
    else:
        per_token = 2.0 * m.hidden * 2.0
    return factor * t_max * per_token


def plan_memory(config: ServingConfig, calib: params.Calibration | None = None) -> MemoryPlan:
    """Memory accounting per GPU (vLLM: fraction of total for everything but CUDA graphs;
    SGLang: static fraction for weights + KV, everything dynamic outside it; TensorRT-LLM and
    MindIE: fraction of what is free after weights, activations and graphs)."""
    calib = calib or params.fitted_calibration()
    usable = config.gpu.memory_bytes * calib.efficiency(config.gpu.name).usable_scale
    weights = weight_bytes_per_gpu(config)
    act = activation_bytes(config)
    ranks = config.tensor_parallel * config.data_parallel
    non_torch = (params.NON_TORCH_GIB + (params.NCCL_BUFFER_GIB if ranks > 1 else 0.0)) * GIB
    non_torch += params.ATTENTION_WORKSPACE_GIB.get(config.attention_backend.lower(), 0.0) * GIB
    graph_bs = min(config.cuda_graph_max_batch, max(config.max_num_seqs, 1))
    graphs = (
        (params.CUDA_GRAPH_BASE_GIB + params.CUDA_GRAPH_PER_SEQ_GIB * graph_bs) * GIB
        if config.cuda_graphs
        else 0.0
    )
    budget = config.mem_fraction * usable
    page = config.block_size
    if config.engine == "sglang":
        kv = budget - weights
        headroom = usable - budget - graphs - act - non_torch
        page = 1
    elif config.engine in ("trtllm", "mindie"):
        free = usable - weights - act - non_torch - graphs
        kv = config.mem_fraction * free
        if config.kv_cache_gib > 0:
            kv = config.kv_cache_gib * GIB
        budget = weights + act + non_torch + kv
        headroom = free - kv
    else:
        kv = budget - weights - act - non_torch
        if config.kv_cache_gib > 0:
            kv = config.kv_cache_gib * GIB
        headroom = usable - budget - graphs
    kv_kind = 1 if config.kv_cache_dtype == "fp8" else 2
    kvb = config.model.kv_bytes_per_token_per_gpu(config.tensor_parallel, kv_kind)
    blocks = max(0, math.floor(kv / (page * kvb)))
    kv_tokens = blocks * page
    dp_cores = config.data_parallel if config.engine == "vllm" else 1
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
        kv_tokens_per_replica=kv_tokens * dp_cores,
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


def check_memory(
    config: ServingConfig,
    plan: MemoryPlan,
    rng: np.random.Generator,
    calib: params.Calibration | None = None,
) -> Crash | None:
    """The memory crash this config hits (startup first, then under load), or None."""
    calib = calib or params.fitted_calibration()
    eps_kv, eps_runtime = boundary_noise(rng, 2, calib.scalar("boundary_delta"))
    if plan.weights_gib + plan.non_torch_gib > plan.usable_gib:
        return _weights_oom(config, plan)
    if plan.kv_gib <= 0 or plan.kv_tokens < (1 if config.engine == "sglang" else 16):
        return Crash(CrashClass.NO_KV_MEMORY, _no_kv_message(config))
    if config.engine in ("trtllm", "mindie") and plan.kv_tokens < config.max_model_len:
        return Crash(CrashClass.KV_TOO_SMALL, _kv_too_small_other(config, plan))
    if config.engine == "vllm":
        available = plan.kv_gib * (1.0 + eps_kv)
        needed = config.max_model_len * plan.kv_bytes_per_token / GIB
        if available < needed:
            return Crash(CrashClass.KV_TOO_SMALL, _kv_too_small_message(config, plan, available))
    if config.engine == "sglang" and plan.runtime_headroom_gib < 0:
        return Crash(CrashClass.RUNTIME_OOM, _graph_capture_message(config), phase="startup")
    if config.engine == "vllm" and plan.runtime_headroom_gib < 0:
        return Crash(CrashClass.RUNTIME_OOM, _cuda_oom_message(config, plan), phase="startup")
    headroom = plan.runtime_headroom_gib * (1.0 + eps_runtime)
    if headroom < plan.runtime_transient_gib:
        return Crash(CrashClass.RUNTIME_OOM, _cuda_oom_message(config, plan), phase="load")
    return None


def _weights_oom(config: ServingConfig, plan: MemoryPlan) -> Crash:
    m = config.model
    w = 1.0 if config.weight_dtype == "fp8" else 2.0
    if m.is_moe:
        chunk = m.expert_params_per_layer * w / moe_shard_ranks(config)
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


def _kv_too_small_other(config: ServingConfig, plan: MemoryPlan) -> str:
    if config.engine == "mindie":
        return (
            f"RuntimeError: npu memory for KV cache ({plan.kv_gib:.2f} GB) cannot hold one "
            f"sequence of maxSeqLen {config.max_model_len} ({plan.kv_tokens} tokens fit); "
            "increase npuMemSize or decrease maxSeqLen."
        )
    return (
        f"RuntimeError: The max_seq_len ({config.max_model_len}) exceeds the KV cache capacity "
        f"({plan.kv_tokens} tokens); increase kv_cache_config.free_gpu_memory_fraction or "
        "reduce max_seq_len."
    )


def _no_kv_message(config: ServingConfig) -> str:
    if config.engine == "trtllm":
        return (
            "RuntimeError: Executor failed: No free blocks in the KV cache pool; increase "
            "kv_cache_config.free_gpu_memory_fraction."
        )
    if config.engine == "mindie":
        return "RuntimeError: Not enough NPU memory for KV cache blocks (npuMemSize)."
    if config.engine == "sglang":
        return "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."
    return (
        "ValueError: No available memory for the cache blocks. Try increasing "
        "`gpu_memory_utilization` when initializing the engine."
    )


def _kv_too_small_message(config: ServingConfig, plan: MemoryPlan, available_gib: float) -> str:
    mml = config.max_model_len
    needed = mml * plan.kv_bytes_per_token / GIB
    tokens = int(available_gib * GIB / plan.kv_bytes_per_token)
    estimated = tokens // config.block_size * config.block_size
    if version_tuple(config.engine_version) < (0, 12):
        return (
            f"ValueError: To serve at least one request with the models's max seq len ({mml}), "
            f"({needed:.2f} GiB KV cache is needed, which is larger than the available KV cache "
            f"memory ({available_gib:.2f} GiB). Based on the available memory, the estimated "
            f"maximum model length is {estimated}. Try increasing `gpu_memory_utilization` or "
            "decreasing `max_model_len` when initializing the engine."
        )
    return (
        f"ValueError: To serve at least one request with the model's max seq len ({mml}), "
        f"({needed:.2f} GiB KV cache is needed, which is larger than the available KV cache "
        f"memory ({available_gib:.2f} GiB). Based on the available memory, the estimated "
        f"maximum model length is {estimated}. Try increasing `gpu_memory_utilization` (which "
        "also controls CPU memory on the CPU backend) or decreasing `max_model_len` when "
        "initializing the engine."
    )


def _cuda_oom_message(config: ServingConfig, plan: MemoryPlan) -> str:
    need_mib = plan.runtime_transient_gib / plan.transient_factor * 1024
    free_mib = max(0.0, plan.runtime_headroom_gib * 1024)
    return (
        f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {need_mib:.2f} MiB. "
        f"GPU 0 has a total capacity of {plan.usable_gib:.2f} GiB of which {free_mib:.2f} MiB "
        f"is free. (a step of {config.max_num_batched_tokens} batched tokens)"
    )


def _graph_capture_message(config: ServingConfig) -> str:
    return (
        "Exception: Capture cuda graph failed: CUDA out of memory. Possible solutions:\n"
        "1. set --mem-fraction-static to a smaller value (e.g., 0.8 or 0.7)\n"
        f"2. set --cuda-graph-max-bs to a smaller value (e.g., {config.cuda_graph_max_batch // 2})"
        "\n3. disable torch compile by not using --enable-torch-compile\n"
        "4. disable CUDA graph by --disable-cuda-graph. (Not recommended. Huge performance loss)"
    )

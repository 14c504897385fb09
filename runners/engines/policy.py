"""What the simulator must know about one engine: its `SimPolicy` (pure data and small methods).

Place in the data flow: an engine entry may carry a policy; the simulator (runners.sim) looks it
up once per trial and follows it, so no simulator module compares engine names. A policy says
how the engine's memory budget is meant (vLLM: a fraction of total memory for everything;
SGLang: a static fraction for weights + KV; TensorRT-LLM and MindIE: a fraction of what is free
after weights), the KV page, what data parallelism means (vLLM: engine cores inside one
instance; SGLang: whole replicas), which scheduler model runs it, the memory crash checks that
differ between engines with their real error texts, how max-running is derived, the prior
host-side costs, and the format of the short log the simulator writes. An engine without a
policy cannot be simulated (`runners.engines.sim_policy` says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from runners.engines.parallel import Parallelism
from runners.types import ServingConfig

MemoryBudget = Literal["fraction_of_total", "static_weights_and_kv", "fraction_of_free"]
DataParallel = Literal["engine_cores", "replicas", "none"]
KvCapacityCheck = Literal["boundary_ramp", "exact", "none"]
MaxRunning = Literal["configured", "from_kv_pool"]


class SchedulerKind(StrEnum):
    """The scheduler models of runners.sim.scheduler, by the engine behaviour they follow."""

    VLLM_V1 = "vllm-v1"  # token budget, running first, chunked prefill, preempt the tail
    SGLANG = "sglang"  # token pool, prefill batches first, new-token reservation, retraction
    TRTLLM_CAPACITY = "trtllm-capacity"  # in-flight batching under a capacity scheduler
    MINDIE_PD = "mindie-pd"  # separate prefill and decode batches, no chunking


@dataclass(frozen=True)
class EngineCosts:
    """Host-side costs and kernel quality of one engine (all seconds, except the factors).

    Priors of the calibration keys ``engine.<name>.<field>`` (refitted by
    scripts/calibrate_sim.py where measurements exist).
    """

    cpu_step_s: float  # c0: engine CPU per step (schedule, prepare inputs, sample, detokenize)
    cpu_per_seq_s: float  # c1: per running sequence
    c_in_s: float  # API-server ingestion CPU per request (processor-shared)
    latency_s: float  # fixed pipeline latency per request (HTTP -> engine core)
    c_out_s: float  # serialized output streaming per token
    kernel: float  # multiplier on every compute efficiency (kernel quality vs vLLM 0.11)
    # Multiplier on MoE efficiency for checkpoint-native MXFP4 experts (gpt-oss): each engine
    # ships its own MXFP4 MoE kernel (vLLM Marlin/triton_kernels, SGLang triton_kernel,
    # TRT-LLM CUTLASS), whose quality differs far more than the BF16 ones do.
    mxfp4: float = 1.0
    # Multiplier on FP8 GEMM efficiency (FP8 checkpoints): engines run block-scaled FP8 through
    # different kernels (vLLM CUTLASS, SGLang sgl-kernel / DeepGEMM / triton w8a8, TRT-LLM its
    # own), and their gain over BF16 differs (GPUStack Qwen3-14B on H100: SGLang FP8 1.24x
    # its BF16 throughput). Fitted in stage E where an engine has FP8 rows; vLLM is 1.0.
    fp8: float = 1.0
    # Extra ingestion CPU per request for each additional GPU worker process of the instance
    # (TP x PP - 1): busy-polling workers share the host with the single-threaded API server.
    # Prior 0.4 ms (GPUStack all-at-once 128/4 runs: ~4-5 ms/request at TP1, ~6 at TP4, ~9 at
    # TP8); fitted in stage C.
    c_in_per_worker_s: float = 0.4e-3


# The single-stage fit of vLLM 0.11 on GPUStack runs (c0 1.6 ms, c1 11.7 us, c_in 5.7 ms,
# c_out 15.9 us); the other engines start from the same priors. The pipeline latency l is the
# low-load one (HTTP -> engine core -> first streamed chunk, beyond tokenization and the first
# step): all-at-once runs cannot see it (71 ms or 5 ms moves their median TTFT error by 0.2
# points), so it is not fitted on them. 11.7 ms is what the closed-loop vLLM-CPU runs of
# tests/data/closed_loop/ give (scripts/fit_closed_loop.py: 19.8 ms on a host that is 1.7x
# slower than a GPU server's); the burst-fitted 39 to 71 ms made a lone request's TTFT far too
# long (docs/simulator.md, "Closed-loop latency").
VLLM_011_COSTS = EngineCosts(1.6e-3, 11.7e-6, 5.7e-3, 11.7e-3, 15.9e-6, 1.0)


@dataclass(frozen=True)
class MemoryFacts:
    """The numbers of a memory plan that crash texts quote (GiB unless said otherwise)."""

    usable_gib: float
    kv_gib: float
    kv_tokens: int
    kv_bytes_per_token: int
    headroom_gib: float
    transient_gib: float
    transient_factor: float


@dataclass(frozen=True)
class SimPolicy:
    """How the simulator treats one engine. Subclasses supply the engine's error texts and log.

    `startup_headroom_crash`: the engine dies at start when nothing is left outside its
    budget (vLLM's CUDA-graph capture, SGLang's graph capture); otherwise only a full step
    under load can run out. `explicit_kv_size`: `ServingConfig.kv_cache_gib` overrides the
    budget (MindIE npuMemSize, vLLM kv-cache-memory-bytes).
    """

    budget: MemoryBudget
    data_parallel: DataParallel
    scheduler: SchedulerKind
    min_kv_tokens: int
    kv_capacity_check: KvCapacityCheck
    startup_headroom_crash: bool
    explicit_kv_size: bool
    max_running: MaxRunning
    costs: EngineCosts

    # --- shape --------------------------------------------------------------------------------
    def page_tokens(self, config: ServingConfig) -> int:
        """Tokens per KV page: the engine's block (vLLM's block size, SGLang's --page-size,
        1 unless set, MindIE's cacheBlockSize)."""
        return max(1, config.block_size)

    def engine_cores(self, config: ServingConfig) -> int:
        """Engine cores of one instance that share its scheduler's budget (vLLM DP; the
        attention-DP groups of SGLang and TensorRT-LLM)."""
        cores = config.data_parallel if self.data_parallel == "engine_cores" else 1
        return cores * config.attention_dp

    def instances(self, config: ServingConfig) -> int:
        """Independent instances serving the workload (SGLang DP: whole replicas)."""
        per = config.data_parallel if self.data_parallel == "replicas" else 1
        return config.replicas * per

    def moe_shard_ranks(self, config: ServingConfig) -> int:
        """Ranks the MoE layers are sharded over (vLLM: TP x DP; otherwise TP)."""
        return config.tensor_parallel * self.engine_cores(config)

    def split(self, config: ServingConfig) -> Parallelism:
        """How one instance is split, as far as a `ServingConfig` tells (expert parallelism
        places experts whole, so their matrices are not sharded)."""
        ranks = self.moe_shard_ranks(config)
        whole = config.expert_parallel and ranks > 1
        return Parallelism(
            tensor=config.tensor_parallel,
            pipeline=config.pipeline_parallel,
            data=self.engine_cores(config),
            moe_shards=1 if whole else ranks,
            dense_shards=config.tensor_parallel,
        )

    def running_limit(self, config: ServingConfig, kv_tokens: int) -> int:
        """Max running requests: configured, or derived from the KV pool when unset."""
        if self.max_running == "from_kv_pool" and config.max_num_seqs <= 0:
            return self.derived_max_running(kv_tokens, config.max_model_len)
        return config.max_num_seqs

    def derived_max_running(self, kv_tokens: int, context_len: int) -> int:
        raise NotImplementedError(f"{type(self).__name__} derives no max-running limit")

    # --- the engine's own texts -------------------------------------------------------------
    def no_kv_text(self, config: ServingConfig) -> str:
        """No memory is left for the KV cache at all."""
        raise NotImplementedError

    def kv_too_small_text(
        self, config: ServingConfig, facts: MemoryFacts, available_gib: float
    ) -> str:
        """The KV cache cannot hold one sequence of max-model-len."""
        raise NotImplementedError

    def startup_oom_text(self, config: ServingConfig, facts: MemoryFacts) -> str:
        """Nothing is left outside the budget at start (only if `startup_headroom_crash`)."""
        raise NotImplementedError

    def log_prefixes(self, when: datetime) -> tuple[str, str]:
        """(info, error) prefixes of the engine's log lines written at `when`."""
        raise NotImplementedError

    def kv_log_lines(self, config: ServingConfig, kv_tokens: int) -> tuple[str, ...]:
        """What the engine logs once its KV cache of `kv_tokens` is allocated."""
        raise NotImplementedError


def torch_oom_text(facts: MemoryFacts, batched_tokens: int) -> str:
    """PyTorch's out-of-memory error for a full step of `batched_tokens` (any CUDA engine)."""
    need_mib = facts.transient_gib / facts.transient_factor * 1024
    free_mib = max(0.0, facts.headroom_gib * 1024)
    return (
        f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {need_mib:.2f} MiB. "
        f"GPU 0 has a total capacity of {facts.usable_gib:.2f} GiB of which {free_mib:.2f} MiB "
        f"is free. (a step of {batched_tokens} batched tokens)"
    )


__all__ = [
    "VLLM_011_COSTS",
    "EngineCosts",
    "MemoryFacts",
    "SchedulerKind",
    "SimPolicy",
    "torch_oom_text",
]

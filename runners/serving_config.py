"""`ServingConfig`: a candidate resolved against its hardware, engine-neutral.

An engine adapter (`runners.engines`) turns a `Candidate`'s settings into this, every engine
default applied, and the simulator (`runners.sim`) consumes it; `runners.types` re-exports it
with the rest of the contract between the search and the runners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from runners.catalog import GpuSpec, ModelSpec

EngineName = str
"""The name of a registered engine (``vllm``, ``sglang``, ...): `runners.engines.engine_names()`
lists them; any other name is an `EngineError` where an engine is looked up."""
WeightDtype = Literal["bf16", "fp8"]
"""The storage class of a resolved checkpoint's weights, as engines and their rules ask it."""


@dataclass(frozen=True)
class ServingConfig:
    """A candidate resolved against its hardware: every engine default applied, engine-neutral.

    This is what the simulator consumes. `mem_fraction` is vLLM's gpu-memory-utilization (a
    fraction of total memory for everything) or SGLang's mem-fraction-static (weights + KV).
    `max_num_batched_tokens` is the per-step token budget (SGLang: chunked-prefill-size, or
    max-prefill-tokens when chunking is off; TRT-LLM: max_num_tokens). `mem_fraction` is
    TRT-LLM's free_gpu_memory_fraction (of the memory free after weights) for ``trtllm``.
    `capacity_policy` is TRT-LLM's capacity scheduler policy; `max_prefill_batch` and
    `max_prefill_tokens` are MindIE's maxPrefillBatchSize / maxPrefillTokens (SGLang's
    max-prefill-tokens too); 0 means no such limit. `spec_method` / `spec_tokens` describe
    speculative decoding (None = off); the acceptance rate is a workload property.
    `weight_quant` names the checkpoint's format beyond `weight_dtype` ("fp8-tensor" for
    per-tensor FP8, "int8", "awq", "gptq", "mxfp4", "nvfp4"; empty = BF16 or block FP8, with
    routed experts in `model.expert_weight_bits` when only they are quantized).
    `kv_cache_gib` is an explicit KV-cache size per GPU (MindIE npuMemSize, vLLM
    kv-cache-memory-bytes); 0 = derived from `mem_fraction`.
    `attention_dp` is the number of attention data-parallel groups of one replica (SGLang's
    attention DP, TensorRT-LLM's enable_attention_dp): each runs attention at TP =
    `tensor_parallel` on its own sequences, and the MoE layers span all of them. `nodes` is
    how many nodes one replica spans (TP innermost, then DP, then PP stages, as the engines
    number their ranks) and `inter_node_gb_s` each GPU's share of the network between them
    (GB/s, one direction; None: unknown).
    """

    engine: EngineName
    engine_version: str
    model: ModelSpec
    gpu: GpuSpec
    weight_dtype: WeightDtype
    tensor_parallel: int
    data_parallel: int
    expert_parallel: bool
    max_model_len: int
    mem_fraction: float
    max_num_batched_tokens: int
    max_num_seqs: int
    chunked_prefill: bool
    prefix_caching: bool
    kv_cache_dtype: Literal["bf16", "fp8"]
    attention_backend: str
    moe_backend: str
    cuda_graphs: bool
    cuda_graph_max_batch: int
    async_scheduling: bool
    block_size: int
    schedule_conservativeness: float = 1.0
    replicas: int = 1
    pipeline_parallel: int = 1
    capacity_policy: Literal["max_utilization", "guaranteed_no_evict", "static_batch"] = (
        "max_utilization"
    )
    max_prefill_batch: int = 0
    max_prefill_tokens: int = 0
    performance_mode: str = "balanced"
    spec_method: str | None = None
    spec_tokens: int = 0
    stream_interval: int = 1
    api_server_count: int = 1
    weight_quant: str = ""
    kv_cache_gib: float = 0.0
    attention_dp: int = 1
    nodes: int = 1
    inter_node_gb_s: float | None = None

    @property
    def gpus_per_replica(self) -> int:
        return (
            self.tensor_parallel * self.data_parallel * self.attention_dp * self.pipeline_parallel
        )

"""How the simulator treats vLLM: its memory budget, scheduler, crash texts and log format.

Place in the data flow: the `SimPolicy` of vLLM's registry entry, read by runners.sim once per
trial. vLLM reserves `gpu-memory-utilization` of total memory for weights, activations and the
KV cache (CUDA graphs outside it), pages the KV cache in blocks, runs data parallelism as
engine cores of one instance (the MoE layers span TP x DP), and follows the V1 scheduler. It
refuses to start when the KV cache cannot hold one max-model-len sequence (decided near the
boundary by the simulator's seeded ramp) and when nothing is left for CUDA graphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runners.catalog import GIB
from runners.engines.policy import (
    VLLM_011_COSTS,
    MemoryFacts,
    SchedulerKind,
    SimPolicy,
    torch_oom_text,
)
from runners.engines.versions import parse_version
from runners.types import ServingConfig


@dataclass(frozen=True)
class VllmPolicy(SimPolicy):
    def no_kv_text(self, config: ServingConfig) -> str:
        return (
            "ValueError: No available memory for the cache blocks. Try increasing "
            "`gpu_memory_utilization` when initializing the engine."
        )

    def kv_too_small_text(
        self, config: ServingConfig, facts: MemoryFacts, available_gib: float
    ) -> str:
        mml = config.max_model_len
        needed = mml * facts.kv_bytes_per_token / GIB
        tokens = int(available_gib * GIB / facts.kv_bytes_per_token)
        estimated = tokens // config.block_size * config.block_size
        if parse_version(config.engine_version).release < (0, 12, 0):
            return (
                f"ValueError: To serve at least one request with the models's max seq len "
                f"({mml}), ({needed:.2f} GiB KV cache is needed, which is larger than the "
                f"available KV cache memory ({available_gib:.2f} GiB). Based on the available "
                f"memory, the estimated maximum model length is {estimated}. Try increasing "
                "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the "
                "engine."
            )
        return (
            f"ValueError: To serve at least one request with the model's max seq len ({mml}), "
            f"({needed:.2f} GiB KV cache is needed, which is larger than the available KV cache "
            f"memory ({available_gib:.2f} GiB). Based on the available memory, the estimated "
            f"maximum model length is {estimated}. Try increasing `gpu_memory_utilization` "
            "(which also controls CPU memory on the CPU backend) or decreasing `max_model_len` "
            "when initializing the engine."
        )

    def startup_oom_text(self, config: ServingConfig, facts: MemoryFacts) -> str:
        return torch_oom_text(facts, config.max_num_batched_tokens)

    def log_prefixes(self, when: datetime) -> tuple[str, str]:
        stamp = f"{when:%m-%d %H:%M:%S}"
        return f"INFO {stamp} [simulated]", f"ERROR {stamp} [simulated]"

    def kv_log_lines(self, config: ServingConfig, kv_tokens: int) -> tuple[str, ...]:
        mml = config.max_model_len
        return (
            f"GPU KV cache size: {kv_tokens:,} tokens",
            f"Maximum concurrency for {mml:,} tokens per request: {kv_tokens / mml:.2f}x",
        )


POLICY = VllmPolicy(
    budget="fraction_of_total",
    data_parallel="engine_cores",
    scheduler=SchedulerKind.VLLM_V1,
    min_kv_tokens=16,
    kv_capacity_check="boundary_ramp",
    startup_headroom_crash=True,
    explicit_kv_size=True,
    max_running="configured",
    costs=VLLM_011_COSTS,
)

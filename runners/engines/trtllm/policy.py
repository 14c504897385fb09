"""How the simulator treats TensorRT-LLM: its memory budget, scheduler, crash texts, log format.

Place in the data flow: the `SimPolicy` of TensorRT-LLM's registry entry, read by runners.sim
once per trial. `free_gpu_memory_fraction` is a fraction of the memory still free after weights
and warm-up that goes to the KV cache (paged in `tokens_per_block` blocks); its capacity
scheduler (GUARANTEED_NO_EVICT by default) decides admission. The engine refuses to start when
the KV cache cannot hold one `max_seq_len` sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runners.engines.policy import VLLM_011_COSTS, MemoryFacts, SchedulerKind, SimPolicy
from runners.types import ServingConfig


@dataclass(frozen=True)
class TrtllmPolicy(SimPolicy):
    def no_kv_text(self, config: ServingConfig) -> str:
        return (
            "RuntimeError: Executor failed: No free blocks in the KV cache pool; increase "
            "kv_cache_config.free_gpu_memory_fraction."
        )

    def kv_too_small_text(
        self, config: ServingConfig, facts: MemoryFacts, available_gib: float
    ) -> str:
        return (
            f"RuntimeError: The max_seq_len ({config.max_model_len}) exceeds the KV cache "
            f"capacity ({facts.kv_tokens} tokens); increase "
            "kv_cache_config.free_gpu_memory_fraction or reduce max_seq_len."
        )

    def log_prefixes(self, when: datetime) -> tuple[str, str]:
        return "[TensorRT-LLM][INFO]", "[TensorRT-LLM][ERROR]"

    def kv_log_lines(self, config: ServingConfig, kv_tokens: int) -> tuple[str, ...]:
        return (f"Allocated paged KV cache for {kv_tokens} tokens",)


POLICY = TrtllmPolicy(
    budget="fraction_of_free",
    data_parallel="none",
    scheduler=SchedulerKind.TRTLLM_CAPACITY,
    min_kv_tokens=16,
    kv_capacity_check="exact",
    startup_headroom_crash=False,
    explicit_kv_size=True,
    max_running="configured",
    costs=VLLM_011_COSTS,
)

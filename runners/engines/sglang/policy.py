"""How the simulator treats SGLang: its memory budget, scheduler, crash texts and log format.

Place in the data flow: the `SimPolicy` of SGLang's registry entry, read by runners.sim once
per trial. SGLang's `mem-fraction-static` covers weights and the KV pool (everything dynamic
lives outside it), the pool is paged per token, `dp-size` runs whole replicas behind a router,
its scheduler runs prefill batches first with a new-token reservation, and max-running-requests
is derived from the KV pool when unset. A start with nothing left outside the budget dies in
CUDA-graph capture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runners.engines.policy import VLLM_011_COSTS, MemoryFacts, SchedulerKind, SimPolicy
from runners.types import ServingConfig


@dataclass(frozen=True)
class SglangPolicy(SimPolicy):
    def derived_max_running(self, kv_tokens: int, context_len: int) -> int:
        """SGLang's derived max-running-requests (the 0.5.9 formula)."""
        derived = min(max(int(kv_tokens / context_len * 512), 2048), 4096)
        return max(1, min(derived, kv_tokens // 2))

    def no_kv_text(self, config: ServingConfig) -> str:
        return "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."

    def startup_oom_text(self, config: ServingConfig, facts: MemoryFacts) -> str:
        return (
            "Exception: Capture cuda graph failed: CUDA out of memory. Possible solutions:\n"
            "1. set --mem-fraction-static to a smaller value (e.g., 0.8 or 0.7)\n"
            "2. set --cuda-graph-max-bs to a smaller value (e.g., "
            f"{config.cuda_graph_max_batch // 2})\n"
            "3. disable torch compile by not using --enable-torch-compile\n"
            "4. disable CUDA graph by --disable-cuda-graph. (Not recommended. Huge performance "
            "loss)"
        )

    def log_prefixes(self, when: datetime) -> tuple[str, str]:
        prefix = f"[{when:%Y-%m-%d %H:%M:%S} TP0]"
        return prefix, prefix

    def kv_log_lines(self, config: ServingConfig, kv_tokens: int) -> tuple[str, ...]:
        return (
            f"KV Cache is allocated. #tokens: {kv_tokens}",
            f"max_total_num_tokens={kv_tokens}, chunked_prefill_size="
            f"{config.max_num_batched_tokens}, max_running_requests={config.max_num_seqs}, "
            f"context_len={config.max_model_len}",
        )


POLICY = SglangPolicy(
    budget="static_weights_and_kv",
    data_parallel="replicas",
    scheduler=SchedulerKind.SGLANG,
    min_kv_tokens=1,
    kv_capacity_check="none",
    startup_headroom_crash=True,
    explicit_kv_size=False,
    max_running="from_kv_pool",
    costs=VLLM_011_COSTS,
)

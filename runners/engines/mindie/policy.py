"""How the simulator treats MindIE: its memory budget, scheduler, crash texts and log format.

Place in the data flow: the `SimPolicy` of MindIE's registry entry, read by runners.sim once per
trial. MindIE fills the NPU memory free after weights with KV blocks (or takes an explicit
``npuMemSize``), runs separate prefill batches (maxPrefillBatchSize, maxPrefillTokens, no
chunking) and decode batches up to maxBatchSize, and refuses to start when one maxSeqLen
sequence does not fit. Its host-side cost priors are a little higher than the CUDA engines'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runners.engines.policy import EngineCosts, MemoryFacts, SchedulerKind, SimPolicy
from runners.types import ServingConfig


@dataclass(frozen=True)
class MindiePolicy(SimPolicy):
    def no_kv_text(self, config: ServingConfig) -> str:
        return "RuntimeError: Not enough NPU memory for KV cache blocks (npuMemSize)."

    def kv_too_small_text(
        self, config: ServingConfig, facts: MemoryFacts, available_gib: float
    ) -> str:
        return (
            f"RuntimeError: npu memory for KV cache ({facts.kv_gib:.2f} GB) cannot hold one "
            f"sequence of maxSeqLen {config.max_model_len} ({facts.kv_tokens} tokens fit); "
            "increase npuMemSize or decrease maxSeqLen."
        )

    def log_prefixes(self, when: datetime) -> tuple[str, str]:
        stamp = f"{when:%Y-%m-%d %H:%M:%S}"
        return f"[{stamp}] [INFO]", f"[{stamp}] [ERROR]"

    def kv_log_lines(self, config: ServingConfig, kv_tokens: int) -> tuple[str, ...]:
        blocks = kv_tokens // max(1, config.block_size)
        return (f"KV cache: {blocks} blocks of {config.block_size} tokens ({kv_tokens} tokens)",)


POLICY = MindiePolicy(
    budget="fraction_of_free",
    data_parallel="none",
    scheduler=SchedulerKind.MINDIE_PD,
    min_kv_tokens=16,
    kv_capacity_check="exact",
    startup_headroom_crash=False,
    explicit_kv_size=True,
    max_running="configured",
    costs=EngineCosts(2.0e-3, 15.0e-6, 5.7e-3, 39e-3, 15.9e-6, 1.0),
)

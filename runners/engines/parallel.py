"""How one engine instance is split over devices (`Parallelism`), shared by adapters and rules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Parallelism:
    """How one engine instance is split: its GPU count and the MoE weight shards per rank.

    `moe_shards` is the number of ranks each expert's matrices are split over (1 when experts
    are placed whole by expert parallelism); `dense_shards` the same for dense MLP weights.
    """

    tensor: int
    pipeline: int = 1
    data: int = 1
    moe_shards: int = 1
    dense_shards: int = 1

    @property
    def gpus(self) -> int:
        return self.tensor * self.pipeline * self.data

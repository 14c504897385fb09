"""The simulator's reference configuration: the seed case study's baseline, resolved for real.

vLLM 0.33 with nothing but ``--tensor-parallel-size 8`` for Qwen3-235B-A22B-Instruct-2507
(BF16) on one node of 8x H100 80GB: the GPUStack baseline the simulator is checked against.
It goes through the engine adapter, so it carries vLLM's actual defaults (8192 batched tokens,
1024 sequences, 0.92 memory utilization, ...), never a hand-kept copy of them. Tests and
benchmarks vary it with `dataclasses.replace`.
"""

from __future__ import annotations

from runners.engines import resolve
from runners.types import Candidate, NodeGroup, ServingConfig

REFERENCE_MODEL = "Qwen3-235B-A22B-Instruct-2507"
REFERENCE_NODE_GROUP = NodeGroup("h100x8", "H100-SXM-80GB", 8)


def reference_config() -> ServingConfig:
    candidate = Candidate.make(
        "vllm",
        "0.33.0",
        REFERENCE_MODEL,
        "Qwen/Qwen3-235B-A22B-Instruct-2507",
        "bf16",
        {"tensor-parallel-size": 8},
    )
    config = resolve(candidate, REFERENCE_NODE_GROUP)
    if not isinstance(config, ServingConfig):  # pragma: no cover - a broken adapter
        raise AssertionError(f"the reference configuration no longer resolves: {config}")
    return config

"""The simulator's reference configuration: the seed case study's baseline, resolved for real.

vLLM 0.33 with nothing but ``--tensor-parallel-size 8`` for Qwen3-235B-A22B-Instruct-2507
(BF16) on one node of 8x H100 80GB: the GPUStack baseline the simulator is checked against.
It goes through the engine adapter, so it carries vLLM's actual defaults (8192 batched tokens,
1024 sequences, 0.92 memory utilization, ...), never a hand-kept copy of them. Tests and
benchmarks vary it with `dataclasses.replace`; `dense_config` is the small dense case they
share (Qwen3-14B on one A100, each engine's scheduler semantics).
"""

from __future__ import annotations

import dataclasses

from runners.catalog import get_gpu, get_model
from runners.engines import resolve
from runners.types import Candidate, EngineName, NodeGroup, ServingConfig

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


def dense_config(engine: EngineName = "vllm", **overrides: object) -> ServingConfig:
    """Qwen3-14B BF16 on one A100 80GB with `engine`'s scheduler semantics: a small KV pool,
    so long outputs preempt (the scheduler variants' and the fingerprint's shared case)."""
    base = dataclasses.replace(
        reference_config(),
        engine=engine,
        engine_version="1.2.0rc1" if engine == "trtllm" else "0.11.0",
        model=get_model("Qwen3-14B"),
        gpu=get_gpu("A100"),
        tensor_parallel=1,
        max_model_len=40960,
        max_num_batched_tokens=8192,
        max_num_seqs=256,
        mem_fraction=0.9,
        cuda_graph_max_batch=256,
    )
    if engine == "sglang":
        base = dataclasses.replace(base, block_size=1)  # SGLang's --page-size default
    if engine == "trtllm":
        base = dataclasses.replace(base, block_size=32, capacity_policy="guaranteed_no_evict")
    if engine == "mindie":
        base = dataclasses.replace(
            base,
            block_size=128,
            chunked_prefill=False,
            max_prefill_batch=50,
            max_prefill_tokens=8192,
            max_num_seqs=200,
            max_model_len=8192,
        )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]

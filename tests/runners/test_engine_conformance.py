"""The engine conformance suite (runners.testing.engine) on every shipped engine."""

from __future__ import annotations

from runners.testing.engine import EngineEntrySuite


class TestVllm(EngineEntrySuite):
    engine = "vllm"
    cpu = "CPU-2core-AVX512"


class TestSglang(EngineEntrySuite):
    engine = "sglang"


class TestTrtllm(EngineEntrySuite):
    engine = "trtllm"


class TestMindie(EngineEntrySuite):
    engine = "mindie"
    gpu = "Ascend-910B"

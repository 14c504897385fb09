"""The engine conformance suite (runners.testing.engine) on every shipped engine."""

from __future__ import annotations

from typing import ClassVar

from runners.engines import EngineAdapter, get_engine
from runners.testing.engine import EngineEntrySuite
from runners.types import SettingValue


class TestVllm(EngineEntrySuite):
    engine = "vllm"
    cpu = "CPU-2core-AVX512"
    spanning_settings: ClassVar[dict[str, SettingValue] | None] = {
        "tensor-parallel-size": 8,
        "pipeline-parallel-size": 2,
    }


class TestVllm011(EngineEntrySuite):
    """vLLM 0.11 spans nodes only through a Ray cluster of its own: its one-node error stays."""

    engine = "vllm"
    spanning_settings: ClassVar[dict[str, SettingValue] | None] = {"tensor-parallel-size": 16}

    def adapter(self) -> EngineAdapter:
        return get_engine("vllm", "0.11.0")


class TestSglang(EngineEntrySuite):
    engine = "sglang"
    spanning_settings: ClassVar[dict[str, SettingValue] | None] = {"tp-size": 16}


class TestTrtllm(EngineEntrySuite):
    engine = "trtllm"
    spanning_settings: ClassVar[dict[str, SettingValue] | None] = {"tp_size": 16}


class TestMindie(EngineEntrySuite):
    engine = "mindie"
    gpu = "Ascend-910B"
    spanning_settings: ClassVar[dict[str, SettingValue] | None] = {"worldSize": 16}

"""MindIE's settings catalogue (data; MindIE Service 2.x `config.json` keys and env switches).

Place in the data flow: `MindieAdapter` (adapter.py) picks the entries of its release. Settings
are the JSON keys (``maxBatchSize`` 200, ``maxPrefillTokens`` 8192, ``maxPrefillBatchSize`` 50,
``maxSeqLen`` 2560, ``cacheBlockSize`` 128, ``npuMemSize`` -1 = fill free memory,
``worldSize`` = NPUs per instance) plus the 2.3 environment switch
``MINDIE_ASYNC_SCHEDULING_ENABLE``.
"""

from __future__ import annotations

from typing import Literal

from runners.engines.base import SettingInfo
from runners.engines.versions import VersionRange

DEPLOY = "BackendConfig.ModelDeployConfig"
MODEL = "BackendConfig.ModelDeployConfig.ModelConfig[0]"
SCHEDULE = "BackendConfig.ScheduleConfig"


def _key(
    name: str,
    section: str,
    kind: Literal["int", "bool"],
    help: str,
    default: int | bool,
    **extra: object,
) -> SettingInfo:
    minimum = 1 if kind == "int" else None
    return SettingInfo(
        name,
        kind,
        help,
        source="config",
        key=f"{section}.{name}",
        default=default,
        minimum=minimum,
        **extra,  # type: ignore[arg-type]
    )


CATALOGUE: tuple[SettingInfo, ...] = (
    _key("worldSize", MODEL, "int", "NPUs per instance (tensor parallelism)", 4),
    _key("moe_ep", MODEL, "int", "expert-parallel ranks for MoE layers (2.x)", 1),
    _key("maxSeqLen", DEPLOY, "int", "max input + output length", 2560),
    _key("maxInputTokenLen", DEPLOY, "int", "max input length", 2048),
    _key(
        "npuMemSize",
        MODEL,
        "int",
        "KV-cache GiB per NPU; -1 fills the free memory",
        -1,
        choices=(-1,),
    ),
    SettingInfo(
        "cacheBlockSize",
        "choice",
        "KV block size",
        (16, 32, 64, 128),
        source="config",
        key=f"{SCHEDULE}.cacheBlockSize",
        default=128,
    ),
    _key("maxPrefillBatchSize", SCHEDULE, "int", "max requests in one prefill batch", 50),
    _key("maxPrefillTokens", SCHEDULE, "int", "prefill token budget per step", 8192),
    _key("maxBatchSize", SCHEDULE, "int", "max decode batch (running requests)", 200),
    _key("maxIterTimes", SCHEDULE, "int", "max output tokens per request", 512),
    _key("maxQueueDelayMicroseconds", SCHEDULE, "int", "max batching delay (us)", 5000),
    _key("supportSelectBatch", SCHEDULE, "bool", "prefill/decode priority batch selection", False),
    SettingInfo(
        "MINDIE_ASYNC_SCHEDULING_ENABLE",
        "bool",
        "asynchronous scheduling",
        source="env",
        default=False,
        versions=VersionRange("2.3"),
        note="documented from MindIE 2.3.0",
    ),
)

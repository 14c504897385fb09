"""MindIE adapter (Huawei Ascend), releases 2.x: config.json catalogue, checks, daemon launch.

Facts from ENGINES.md §5. MindIE Service is configured by one ``config.json``
(``ServerConfig`` / ``BackendConfig.ModelDeployConfig`` / ``BackendConfig.ScheduleConfig``) and
started as ``mindieservice_daemon``. Settings are the JSON keys (``maxBatchSize`` 200,
``maxPrefillTokens`` 8192, ``maxPrefillBatchSize`` 50, ``maxSeqLen`` 2560, ``cacheBlockSize``
128, ``npuMemSize`` -1 = fill free memory, ``worldSize`` = NPUs per instance, which must equal
the number of devices in ``npuDeviceIds``) plus the 2.3 environment switch
``MINDIE_ASYNC_SCHEDULING_ENABLE``. The rendered config.json is complete (stock values for
everything not searched), so a launch never depends on the file shipped with the install.
The daemon reads it from ``MIES_CONFIG_JSON_PATH`` (not verified in ENGINES.md), devices are
chosen with ``ASCEND_RT_VISIBLE_DEVICES``, and the management API (health) listens on
port + 1; readiness is probed on the service port's ``/v1/models``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

from runners.catalog import GpuSpec, ModelSpec
from runners.engines.base import EngineAdapter, LaunchParts, Parallelism, SettingInfo
from runners.engines.classify import classify as classify_log
from runners.engines.versions import VersionRange
from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    EngineName,
    NodeGroup,
    ServingConfig,
    SettingValue,
)

CONFIG_FILE = "config.json"
DAEMON = "/usr/local/Ascend/mindie/latest/mindie-service/bin/mindieservice_daemon"
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


class MindieAdapter(EngineAdapter):
    """MindIE Service 2.x (`mindieservice_daemon` with a rendered config.json)."""

    name: EngineName = "mindie"
    supported = (VersionRange("2.0", "3.0"),)
    newest = "2.3.0"
    default_port = 1025
    device_env = "ASCEND_RT_VISIBLE_DEVICES"

    @classmethod
    def catalogue(cls) -> tuple[SettingInfo, ...]:
        return CATALOGUE

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        explicit = self.normalize(explicit)
        out: dict[str, SettingValue] = {}
        for name, info in self.settings().items():
            value = explicit.get(name, info.default)
            assert value is not None, name
            out[name] = value
        return out

    def parallelism(self, effective: Mapping[str, SettingValue], model: ModelSpec) -> Parallelism:
        world = int(effective["worldSize"])
        ep = int(effective["moe_ep"])
        return Parallelism(world, 1, 1, moe_shards=max(1, world // ep), dense_shards=world)

    def validate(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> Crash | None:
        world, ep = int(effective["worldSize"]), int(effective["moe_ep"])
        if world > node_group.gpus_per_node:
            return Crash(
                CrashClass.TOO_MANY_GPUS,
                f"worldSize ({world}) is larger than the {node_group.gpus_per_node} NPUs of "
                "this node (worldSize must equal the number of devices in npuDeviceIds).",
            )
        if world % ep != 0 or (ep > 1 and not model.is_moe):
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"moe_ep ({ep}) must divide worldSize ({world}) and needs a MoE model.",
            )
        if int(effective["maxInputTokenLen"]) > int(effective["maxSeqLen"]):
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"maxInputTokenLen ({effective['maxInputTokenLen']}) must not exceed maxSeqLen "
                f"({effective['maxSeqLen']}).",
            )
        return None

    def to_serving_config(
        self,
        candidate: Candidate,
        effective: Mapping[str, SettingValue],
        model: ModelSpec,
        gpu: GpuSpec,
        node_group: NodeGroup,
    ) -> ServingConfig:
        kv_gib = int(effective["npuMemSize"])
        return ServingConfig(
            engine="mindie",
            engine_version=str(self.version),
            model=model,
            gpu=gpu,
            weight_dtype=candidate.weight_dtype,
            tensor_parallel=int(effective["worldSize"]),
            data_parallel=1,
            expert_parallel=int(effective["moe_ep"]) > 1,
            max_model_len=int(effective["maxSeqLen"]),
            mem_fraction=0.9,
            kv_cache_gib=float(max(kv_gib, 0)),
            max_num_batched_tokens=int(effective["maxPrefillTokens"]),
            max_num_seqs=int(effective["maxBatchSize"]),
            chunked_prefill=False,
            prefix_caching=False,
            kv_cache_dtype="bf16",
            attention_backend="ascend",
            moe_backend="auto",
            cuda_graphs=False,
            cuda_graph_max_batch=0,
            async_scheduling=bool(effective.get("MINDIE_ASYNC_SCHEDULING_ENABLE", False)),
            block_size=int(effective["cacheBlockSize"]),
            replicas=self.replicas(effective, model, node_group),
            max_prefill_batch=int(effective["maxPrefillBatchSize"]),
            max_prefill_tokens=int(effective["maxPrefillTokens"]),
        )

    def config_json(
        self,
        candidate: Candidate,
        model: ModelSpec,
        effective: Mapping[str, SettingValue],
        host: str,
        port: int,
    ) -> str:
        """The complete config.json of one instance (stock values where nothing is searched)."""
        world = int(effective["worldSize"])
        ep = int(effective["moe_ep"])
        model_config: dict[str, object] = {
            "modelInstanceType": "Standard",
            "modelName": candidate.checkpoint.split("/")[-1],
            "modelWeightPath": candidate.checkpoint,
            "worldSize": world,
            "cpuMemSize": 5,
            "npuMemSize": effective["npuMemSize"],
            "backendType": "atb",
            "trustRemoteCode": False,
        }
        if model.is_moe and ep > 1:
            model_config.update({"tp": world, "moe_tp": world // ep, "moe_ep": ep})
        schedule = {
            "templateType": "Standard",
            "templateName": "Standard_LLM",
            "cacheBlockSize": effective["cacheBlockSize"],
            "maxPrefillBatchSize": effective["maxPrefillBatchSize"],
            "maxPrefillTokens": effective["maxPrefillTokens"],
            "prefillTimeMsPerReq": 150,
            "prefillPolicyType": 0,
            "decodeTimeMsPerReq": 50,
            "decodePolicyType": 0,
            "maxBatchSize": effective["maxBatchSize"],
            "maxIterTimes": effective["maxIterTimes"],
            "maxPreemptCount": 0,
            "supportSelectBatch": effective["supportSelectBatch"],
            "maxQueueDelayMicroseconds": effective["maxQueueDelayMicroseconds"],
        }
        config = {
            "Version": "1.0.0",
            "ServerConfig": {
                "ipAddress": host,
                "managementIpAddress": host,
                "port": port,
                "managementPort": port + 1,
                "metricsPort": port + 2,
                "allowAllZeroIpListening": host == "0.0.0.0",
                "maxLinkNum": 1000,
                "httpsEnabled": False,
            },
            "BackendConfig": {
                "backendName": "mindieservice_llm_engine",
                "modelInstanceNumber": 1,
                "npuDeviceIds": [list(range(world))],
                "multiNodesInferEnabled": False,
                "ModelDeployConfig": {
                    "maxSeqLen": effective["maxSeqLen"],
                    "maxInputTokenLen": effective["maxInputTokenLen"],
                    "truncation": False,
                    "ModelConfig": [model_config],
                },
                "ScheduleConfig": schedule,
            },
        }
        return json.dumps(config, indent=2) + "\n"

    def launch_parts(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int | None,
        devices: tuple[int, ...],
    ) -> LaunchParts:
        from runners.catalog import get_model

        text = self.config_json(
            candidate,
            get_model(candidate.model),
            effective,
            host or "127.0.0.1",
            port or self.default_port,
        )
        return LaunchParts(
            argv=(DAEMON,),
            env=(("MIES_CONFIG_JSON_PATH", CONFIG_FILE), *self.env_vars(minimal)),
            files=((CONFIG_FILE, text),),
            health_path="/v1/models",
        )


def classify(exit_code: int | None, log_text: str) -> CrashClass:
    """Why mindie failed, from its exit code (None = still running) and its log text."""
    return classify_log("mindie", exit_code, log_text)

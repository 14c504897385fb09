"""MindIE Service adapter (Huawei Ascend, 2.x): config.json rendering, parallelism, daemon launch.

Place in the data flow: the registry entry's adapter; `resolve_candidate` asks it for the
effective settings, argument checks (checks.py) and the engine-neutral `ServingConfig`. MindIE
is configured by one ``config.json`` (``ServerConfig`` / ``BackendConfig.ModelDeployConfig`` /
``BackendConfig.ScheduleConfig``) and started as ``mindieservice_daemon``; ``worldSize`` (NPUs
per instance) must equal the number of devices in ``npuDeviceIds``. The rendered config.json is
complete (stock values for everything not searched), so a launch never depends on the file
shipped with the install. The daemon reads it from ``MIES_CONFIG_JSON_PATH`` (not verified
against a MindIE install), and the management API (health) listens on port + 1; readiness is
probed on the service port's ``/v1/models``. A deployed instance is the same launch: its
config.json already holds every setting (and its ports, so each instance has its own file).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from runners.catalog import GpuSpec, ModelSpec, get_model
from runners.engines.base import EngineAdapter, LaunchParts, SettingInfo
from runners.engines.mindie.catalogue import CATALOGUE
from runners.engines.mindie.checks import argument_checks
from runners.engines.parallel import Parallelism
from runners.engines.versions import VersionRange
from runners.types import (
    Candidate,
    Crash,
    NodeGroup,
    ServingConfig,
    SettingValue,
    WeightDtype,
)

CONFIG_FILE = "config.json"
DAEMON = "/usr/local/Ascend/mindie/latest/mindie-service/bin/mindieservice_daemon"


class MindieAdapter(EngineAdapter):
    """MindIE Service 2.x (`mindieservice_daemon` with a rendered config.json)."""

    name = "mindie"
    supported = (VersionRange("2.0", "3.0"),)
    newest = "2.3.0"
    default_port = 1025
    ports_per_instance = 3  # service, management (health) and metrics ports

    @classmethod
    def catalogue(cls) -> tuple[SettingInfo, ...]:
        return CATALOGUE

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        return self.with_defaults(self.normalize(explicit))

    def parallelism(self, effective: Mapping[str, SettingValue], model: ModelSpec) -> Parallelism:
        world = int(effective["worldSize"])
        ep = int(effective["moe_ep"])
        return Parallelism(world, 1, 1, moe_shards=max(1, world // ep), dense_shards=world)

    def validate(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> Crash | None:
        return argument_checks(effective, model, node_group)

    def to_serving_config(
        self,
        weight_dtype: WeightDtype,
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
            weight_dtype=weight_dtype,
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

    def deploy_launch(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int,
    ) -> LaunchParts:
        return self.launch_parts(candidate, minimal, effective, host, port, ())

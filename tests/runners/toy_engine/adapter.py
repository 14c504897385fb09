"""The toy engine's catalogue (releases 1.0 and 1.1), defaults, parallelism, config and launch."""

from __future__ import annotations

import json
from collections.abc import Mapping

from runners.catalog import GpuSpec, ModelSpec
from runners.engines import (
    EngineAdapter,
    LaunchParts,
    Parallelism,
    SettingInfo,
    VersionRange,
    listen_flags,
)
from runners.types import Candidate, Crash, NodeGroup, ServingConfig, SettingValue, WeightDtype
from tests.runners.toy_engine.checks import argument_checks

CATALOGUE: tuple[SettingInfo, ...] = (
    SettingInfo("workers", "int", "devices per instance (tensor parallel)", minimum=1, default=1),
    SettingInfo("max-batch", "int", "max running requests", minimum=1, default=64),
    SettingInfo("max-tokens", "int", "token budget per step", minimum=1, default=4096),
    SettingInfo(
        "context",
        "int",
        "context length",
        minimum=1,
        default_note="the model's max_position_embeddings",
    ),
    SettingInfo(
        "memory-fraction",
        "float",
        "fraction of device memory for the engine",
        minimum=0.1,
        maximum=1.0,
        default=0.9,
    ),
    SettingInfo(
        "prefix-cache",
        "bool",
        "prefix caching",
        true_flag="--prefix-cache",
        false_flag="--no-prefix-cache",
        default=True,
    ),
    SettingInfo(
        "TOY_LOG_LEVEL", "choice", "log verbosity", ("info", "debug"), source="env", default="info"
    ),
    SettingInfo(
        "eager",
        "bool",
        "no graphs",
        true_flag="--eager",
        default=False,
        versions=VersionRange("1.1"),
        note="added in 1.1",
    ),
)


class ToyAdapter(EngineAdapter):
    name = "toy"
    supported = (VersionRange("1.0", "2.0"),)
    newest = "1.1.0"
    default_port = 7000

    @classmethod
    def catalogue(cls) -> tuple[SettingInfo, ...]:
        return CATALOGUE

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        derived: dict[str, SettingValue] = {"context": model.max_position_embeddings}
        return self.with_defaults(self.normalize(explicit), derived)

    def parallelism(self, effective: Mapping[str, SettingValue], model: ModelSpec) -> Parallelism:
        workers = int(effective["workers"])
        return Parallelism(workers, moe_shards=workers, dense_shards=workers)

    def validate(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> Crash | None:
        return argument_checks(effective, node_group)

    def to_serving_config(
        self,
        weight_dtype: WeightDtype,
        effective: Mapping[str, SettingValue],
        model: ModelSpec,
        gpu: GpuSpec,
        node_group: NodeGroup,
    ) -> ServingConfig:
        return ServingConfig(
            engine=self.name,
            engine_version=str(self.version),
            model=model,
            gpu=gpu,
            weight_dtype=weight_dtype,
            tensor_parallel=int(effective["workers"]),
            data_parallel=1,
            expert_parallel=False,
            max_model_len=int(effective["context"]),
            mem_fraction=float(effective["memory-fraction"]),
            max_num_batched_tokens=int(effective["max-tokens"]),
            max_num_seqs=int(effective["max-batch"]),
            chunked_prefill=True,
            prefix_caching=bool(effective["prefix-cache"]),
            kv_cache_dtype="bf16",
            attention_backend="auto",
            moe_backend="auto",
            cuda_graphs=not effective.get("eager", False),
            cuda_graph_max_batch=int(effective["max-batch"]),
            async_scheduling=False,
            block_size=16,
            replicas=self.replicas(effective, model, node_group),
        )

    def launch_parts(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int | None,
        devices: tuple[int, ...],
    ) -> LaunchParts:
        argv = ("toy-serve", candidate.checkpoint, *listen_flags(host, port), *self.flags(minimal))
        return LaunchParts(argv=argv, env=tuple(self.env_vars(minimal)))

    def deploy_launch(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int,
    ) -> LaunchParts:
        """The toy engine reads its flags from a JSON file given with ``--settings``."""
        text = json.dumps(self.flag_config(minimal), indent=2) + "\n"
        argv = ("toy-serve", candidate.checkpoint, "--settings", "toy.json")
        return LaunchParts(
            argv=(*argv, *listen_flags(host, port)),
            env=tuple(self.env_vars(minimal)),
            files=(("toy.json", text),),
        )

"""TensorRT-LLM `trtllm-serve` adapter (PyTorch backend): defaults, parallelism, config, launch.

Place in the data flow: the registry entry's adapter; `resolve_candidate` asks it for the
effective settings, argument checks (checks.py) and the engine-neutral `ServingConfig`. The
extra-options YAML overrides the CLI. ``free_gpu_memory_fraction`` is a fraction of the memory
*free after weights* that goes to the KV cache (not vLLM's fraction of total memory). CUDA
graphs are on by default; ``cuda_graph_config: false`` writes ``cuda_graph_config: null``. The
capacity scheduler defaults to GUARANTEED_NO_EVICT (set by `get_llm_args`).

A deployed instance carries every setting in one complete extra-options YAML (`deploy_launch`):
the flags under their LLM-API names (``tp_size`` is ``tensor_parallel_size``,
``free_gpu_memory_fraction`` is ``kv_cache_config.free_gpu_memory_fraction``, ...), nested
like the config-file keys, so `trtllm-serve MODEL --extra_llm_api_options FILE` reproduces it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from runners.catalog import GpuSpec, ModelSpec
from runners.engines.base import (
    EngineAdapter,
    LaunchParts,
    NodeRole,
    SettingInfo,
    config_yaml,
    listen_flags,
)
from runners.engines.parallel import Parallelism
from runners.engines.trtllm.catalogue import CATALOGUE
from runners.engines.trtllm.checks import argument_checks
from runners.engines.versions import VersionRange
from runners.types import (
    Candidate,
    Crash,
    NodeGroup,
    ServingConfig,
    SettingValue,
    WeightDtype,
)

OPTIONS_FILE = "extra-llm-api-options.yaml"
LLMAPI_LAUNCH = "trtllm-llmapi-launch"
GRAPH_SUBKEYS = ("cuda_graph_config.max_batch_size", "cuda_graph_config.enable_padding")
LLM_API_KEYS = {
    "tp_size": "tensor_parallel_size",
    "pp_size": "pipeline_parallel_size",
    "ep_size": "moe_expert_parallel_size",
    "free_gpu_memory_fraction": "kv_cache_config.free_gpu_memory_fraction",
}
"""The `TorchLlmArgs` key of each `trtllm-serve` flag whose name differs (the others, e.g.
``max_batch_size``, are spelled the same in both)."""


class TrtllmAdapter(EngineAdapter):
    """TensorRT-LLM 1.2 `trtllm-serve` with the PyTorch backend."""

    name = "trtllm"
    supported = (VersionRange("1.2", "1.3"),)
    newest = "1.2.1"
    default_port = 8000

    @classmethod
    def catalogue(cls) -> tuple[SettingInfo, ...]:
        return CATALOGUE

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        explicit = self.normalize(explicit)
        derived: dict[str, SettingValue] = {
            "ep_size": 1,
            "max_seq_len": model.max_position_embeddings,
        }
        out = self.with_defaults(explicit, derived)
        if not out["cuda_graph_config"]:  # null: the sub-keys have no effect
            for key in GRAPH_SUBKEYS:
                out[key] = self.settings()[key].default  # type: ignore[assignment]
        if out["speculative_config.decoding_type"] == "none":
            out["speculative_config.max_draft_len"] = 0
        return out

    def parallelism(self, effective: Mapping[str, SettingValue], model: ModelSpec) -> Parallelism:
        tp = int(effective["tp_size"])
        ep = int(effective["ep_size"])
        return Parallelism(
            tp, int(effective["pp_size"]), 1, moe_shards=max(1, tp // ep), dense_shards=tp
        )

    def validate(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> Crash | None:
        world = self.gpus_per_instance(effective, model)
        return argument_checks(effective, world, model, node_group, self.spans_nodes())

    def to_serving_config(
        self,
        weight_dtype: WeightDtype,
        effective: Mapping[str, SettingValue],
        model: ModelSpec,
        gpu: GpuSpec,
        node_group: NodeGroup,
    ) -> ServingConfig:
        seqs = int(effective["max_batch_size"])
        policy = str(effective["scheduler_config.capacity_scheduler_policy"]).lower()
        assert policy in ("max_utilization", "guaranteed_no_evict", "static_batch")
        decoding = str(effective["speculative_config.decoding_type"])
        graphs = bool(effective["cuda_graph_config"])
        tp = int(effective["tp_size"])
        # attention DP: every rank runs attention on its own requests, MoE spans all tp ranks
        attention_dp = tp if effective["enable_attention_dp"] else 1
        return ServingConfig(
            engine="trtllm",
            engine_version=str(self.version),
            model=model,
            gpu=gpu,
            weight_dtype=weight_dtype,
            tensor_parallel=tp // attention_dp,
            attention_dp=attention_dp,
            data_parallel=1,
            pipeline_parallel=int(effective["pp_size"]),
            expert_parallel=int(effective["ep_size"]) > 1,
            max_model_len=int(effective["max_seq_len"]),
            mem_fraction=float(effective["free_gpu_memory_fraction"]),
            max_num_batched_tokens=int(effective["max_num_tokens"]),
            max_num_seqs=seqs,
            chunked_prefill=bool(effective["enable_chunked_prefill"]),
            prefix_caching=bool(effective["kv_cache_config.enable_block_reuse"]),
            kv_cache_dtype="fp8" if effective["kv_cache_config.dtype"] == "fp8" else "bf16",
            attention_backend=str(effective["attn_backend"]).lower(),
            moe_backend=str(effective["moe_config.backend"]).lower(),
            cuda_graphs=graphs,
            cuda_graph_max_batch=min(int(effective["cuda_graph_config.max_batch_size"]), seqs)
            if graphs
            else 0,
            async_scheduling=not effective["disable_overlap_scheduler"],
            block_size=int(effective["kv_cache_config.tokens_per_block"]),
            replicas=self.replicas(effective, model, node_group),
            capacity_policy=policy,  # type: ignore[arg-type]
            spec_method=None if decoding == "none" else decoding.lower(),
            spec_tokens=int(effective["speculative_config.max_draft_len"]),
            stream_interval=int(effective["stream_interval"]),
        )

    def options_yaml(
        self, minimal: Mapping[str, SettingValue], with_flags: bool = False
    ) -> str | None:
        """The extra-options YAML for the config-file settings in `minimal` (None if none);
        `with_flags`: the flag settings too, under their LLM-API names (a complete file)."""
        tree: dict[str, object] = {}
        for name, info in self.settings().items():
            if name not in minimal or (info.source != "config" and not with_flags):
                continue
            value = minimal[name]
            if name == "cuda_graph_config":
                if not value:
                    tree["cuda_graph_config"] = None
                continue
            if name.startswith("cuda_graph_config.") and tree.get("cuda_graph_config", 0) is None:
                continue
            key = LLM_API_KEYS.get(name, name) if info.source == "flag" else name
            node = tree
            *parents, leaf = key.split(".")
            for part in parents:
                child = node.setdefault(part, {})
                assert isinstance(child, dict)
                node = child
            node[leaf] = value
        if not tree:
            return None
        return config_yaml(tree)

    def launch_parts(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int | None,
        devices: tuple[int, ...],
    ) -> LaunchParts:
        argv = ["trtllm-serve", candidate.checkpoint]
        argv += listen_flags(host, port)
        argv += self.flags(minimal)
        options = self.options_yaml(minimal)
        files: tuple[tuple[str, str], ...] = ()
        if options is not None:
            argv += ["--extra_llm_api_options", OPTIONS_FILE]
            files = ((OPTIONS_FILE, options),)
        return LaunchParts(argv=tuple(argv), files=files)

    def deploy_launch(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int,
    ) -> LaunchParts:
        argv = ["trtllm-serve", candidate.checkpoint, *listen_flags(host, port)]
        options = self.options_yaml(minimal, with_flags=True)
        files: tuple[tuple[str, str], ...] = ()
        if options is not None:
            argv += ["--extra_llm_api_options", OPTIONS_FILE]
            files = ((OPTIONS_FILE, options),)
        return LaunchParts(argv=tuple(argv), files=files)

    def container_image(self) -> str:
        return f"nvcr.io/nvidia/tensorrt-llm/release:{self.version.text}"

    def spans_nodes(self) -> bool:
        """An instance over several nodes is one MPI job started on rank 0:
        ``mpirun -np WORLD -H node:gpus,... trtllm-llmapi-launch trtllm-serve ...`` (MPI
        starts the ranks of the other nodes; rank 0's leader reads the options file). The
        nodes need OpenMPI and ssh between them, and the same device ids."""
        return True

    def multi_node_parts(self, parts: LaunchParts, role: NodeRole) -> LaunchParts:
        if role.rank > 0:
            return LaunchParts(argv=())  # mpirun on rank 0 starts this node's ranks
        hosts = ",".join(f"{host}:{gpus}" for host, gpus in role.layout)
        forwarded: list[str] = []
        for name in (role.device_env, *(name for name, _ in parts.env)):
            forwarded += ["-x", name]
        argv = ("mpirun", "-np", str(role.world), "-H", hosts, *forwarded, LLMAPI_LAUNCH)
        return dataclasses.replace(parts, argv=(*argv, *parts.argv))

"""TensorRT-LLM adapter, release 1.2 `trtllm-serve` (PyTorch backend): catalogue, checks, launch.

Facts from ENGINES.md §4 and §7.17. Settings are the click options of `trtllm-serve` (underscore
names: ``tp_size``, ``max_batch_size`` 2048, ``max_num_tokens`` 8192, ``free_gpu_memory_fraction``
0.9, ``enable_chunked_prefill``) and keys of the ``--extra_llm_api_options`` YAML written with
the launch (dotted paths such as ``kv_cache_config.enable_block_reuse``); the YAML overrides
the CLI. ``free_gpu_memory_fraction`` is a fraction of the memory *free after weights* that
goes to the KV cache (not vLLM's fraction of total memory). CUDA graphs are on by default;
``cuda_graph_config: false`` writes ``cuda_graph_config: null``. The capacity scheduler
defaults to GUARANTEED_NO_EVICT (set by `get_llm_args`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import yaml

from runners.catalog import GpuSpec, ModelSpec
from runners.engines.base import EngineAdapter, LaunchParts, Parallelism, SettingInfo, listen_flags
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

OPTIONS_FILE = "extra-llm-api-options.yaml"
POLICIES = ("GUARANTEED_NO_EVICT", "MAX_UTILIZATION", "STATIC_BATCH")
MOE_BACKENDS = ("AUTO", "CUTLASS", "TRTLLM", "DEEPGEMM", "TRITON", "VANILLA")
GRAPH_SUBKEYS = ("cuda_graph_config.max_batch_size", "cuda_graph_config.enable_padding")


def _cli_int(name: str, help: str, default: int | None, **extra: object) -> SettingInfo:
    return SettingInfo(name, "int", help, minimum=1, default=default, **extra)  # type: ignore[arg-type]


def _key(
    name: str, kind: Literal["int", "float", "bool", "choice"], help: str, **extra: object
) -> SettingInfo:
    return SettingInfo(name, kind, help, source="config", **extra)  # type: ignore[arg-type]


CATALOGUE: tuple[SettingInfo, ...] = (
    _cli_int("tp_size", "tensor-parallel ranks", 1, aliases=("tensor_parallel_size",)),
    _cli_int("pp_size", "pipeline stages", 1, aliases=("pipeline_parallel_size",)),
    _cli_int(
        "ep_size",
        "MoE expert-parallel ranks inside the TP group",
        None,
        aliases=("moe_expert_parallel_size",),
        default_note="unset: MoE layers use tensor parallelism (EP 1)",
    ),
    _cli_int("max_batch_size", "max scheduled requests", 2048),
    _cli_int("max_num_tokens", "max batched tokens per iteration", 8192),
    _cli_int("max_seq_len", "max prompt + output length", None, default_note="the model's config"),
    SettingInfo(
        "free_gpu_memory_fraction",
        "float",
        "fraction of the memory free after weights that goes to the KV cache",
        minimum=0.01,
        maximum=1.0,
        default=0.9,
        aliases=("kv_cache_free_gpu_memory_fraction",),
    ),
    SettingInfo(
        "enable_chunked_prefill",
        "bool",
        "chunked prefill",
        true_flag="--enable_chunked_prefill",
        default=False,
    ),
    _key("enable_attention_dp", "bool", "attention data parallelism (MoE)", default=False),
    _key(
        "kv_cache_config.enable_block_reuse",
        "bool",
        "KV block reuse (prefix caching)",
        default=True,
    ),
    _key(
        "kv_cache_config.dtype",
        "choice",
        "KV cache dtype",
        choices=("auto", "fp8"),
        default="auto",
    ),
    _key(
        "kv_cache_config.tokens_per_block",
        "choice",
        "tokens per KV block",
        choices=(8, 16, 32, 64, 128),
        default=32,
    ),
    _key(
        "cuda_graph_config",
        "bool",
        "CUDA graphs (false writes cuda_graph_config: null)",
        default=True,
    ),
    _key(
        "cuda_graph_config.max_batch_size",
        "int",
        "largest captured CUDA-graph batch",
        minimum=1,
        default=128,
        default_note="0 in the YAML model, meaning 128",
    ),
    _key(
        "cuda_graph_config.enable_padding",
        "bool",
        "pad batches up to a captured size",
        default=False,
    ),
    _key("disable_overlap_scheduler", "bool", "turn off the overlap scheduler", default=False),
    _key(
        "attn_backend",
        "choice",
        "attention kernels",
        choices=("TRTLLM", "FLASHINFER", "VANILLA"),
        default="TRTLLM",
    ),
    _key("moe_config.backend", "choice", "MoE kernels", choices=MOE_BACKENDS, default="AUTO"),
    _key("stream_interval", "int", "tokens per streamed chunk", minimum=1, default=1),
    _key(
        "scheduler_config.capacity_scheduler_policy",
        "choice",
        "capacity scheduler",
        choices=POLICIES,
        default="GUARANTEED_NO_EVICT",
    ),
    _key(
        "speculative_config.decoding_type",
        "choice",
        "speculative decoding (none = off)",
        choices=("none", "NGram"),
        default="none",
    ),
    _key(
        "speculative_config.max_draft_len",
        "int",
        "draft tokens per step",
        minimum=1,
        maximum=16,
        default=0,
        default_note="unset (needed with a decoding type)",
    ),
)


class TrtllmAdapter(EngineAdapter):
    """TensorRT-LLM 1.2 `trtllm-serve` with the PyTorch backend."""

    name: EngineName = "trtllm"
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
        out: dict[str, SettingValue] = {}
        for name, info in self.settings().items():
            if name in explicit:
                value = explicit[name]
            elif name in derived:
                value = derived[name]
            else:
                assert info.default is not None, name
                value = info.default
            out[name] = float(value) if info.kind == "float" else value
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
        tp, ep = int(effective["tp_size"]), int(effective["ep_size"])
        world = self.gpus_per_instance(effective, model)
        if world > node_group.gpus_per_node:
            return Crash(
                CrashClass.TOO_MANY_GPUS,
                f"RuntimeError: world_size ({world}) = tp_size x pp_size exceeds the "
                f"{node_group.gpus_per_node} GPUs of this node.",
            )
        if tp % ep != 0:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"ValueError: tp_size ({tp}) must be divisible by moe_expert_parallel_size "
                f"({ep}).",
            )
        if ep > 1 and not model.is_moe:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"ValueError: moe_expert_parallel_size ({ep}) > 1 needs a MoE model; "
                f"{model.name} is dense.",
            )
        decoding = effective["speculative_config.decoding_type"]
        if decoding != "none" and not effective["speculative_config.max_draft_len"]:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"ValueError: speculative_config.max_draft_len must be set for {decoding}.",
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
        seqs = int(effective["max_batch_size"])
        policy = str(effective["scheduler_config.capacity_scheduler_policy"]).lower()
        assert policy in ("max_utilization", "guaranteed_no_evict", "static_batch")
        decoding = str(effective["speculative_config.decoding_type"])
        graphs = bool(effective["cuda_graph_config"])
        return ServingConfig(
            engine="trtllm",
            engine_version=str(self.version),
            model=model,
            gpu=gpu,
            weight_dtype=candidate.weight_dtype,
            tensor_parallel=int(effective["tp_size"]),
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

    def options_yaml(self, minimal: Mapping[str, SettingValue]) -> str | None:
        """The extra-options YAML for the config-file settings in `minimal` (None if none)."""
        tree: dict[str, object] = {}
        for name, info in self.settings().items():
            if name not in minimal or info.source != "config":
                continue
            value = minimal[name]
            if name == "cuda_graph_config":
                if not value:
                    tree["cuda_graph_config"] = None
                continue
            if name.startswith("cuda_graph_config.") and tree.get("cuda_graph_config", 0) is None:
                continue
            node = tree
            *parents, leaf = name.split(".")
            for part in parents:
                child = node.setdefault(part, {})
                assert isinstance(child, dict)
                node = child
            node[leaf] = value
        if not tree:
            return None
        return yaml.safe_dump(tree, sort_keys=False, default_flow_style=False)

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


def classify(exit_code: int | None, log_text: str) -> CrashClass:
    """Why trtllm failed, from its exit code (None = still running) and its log text."""
    return classify_log("trtllm", exit_code, log_text)

"""vLLM `vllm serve` adapter: defaults on given hardware, parallelism, the serving config, launch.

Place in the data flow: the registry entry's adapter; `resolve_candidate` asks it for the
effective settings, argument checks (checks.py) and the engine-neutral `ServingConfig`.
`EngineArgs.get_batch_defaults` gives 8192 batched tokens and 1024 sequences for `vllm serve` on
GPUs of >= 70 GiB that are not Ampere (16384/1024 at >= 160 GiB from 0.29), else 2048/256;
`--performance-mode throughput` (0.18+) doubles only *defaulted* values; chunked prefill off
raises the token budget to max-model-len (0.11 ignores turning it off). On the CPU device
(`GpuSpec.is_cpu`) vLLM's defaults are the CPU platform's (`get_batch_defaults`: 2048 batched
tokens and 128 sequences per TP x PP rank for the API server;
`CpuPlatform.check_and_update_config`: block size 128, async scheduling forced off), and
``--gpu-memory-utilization`` is the fraction of the NUMA node's memory reserved, checked only
when ``VLLM_CPU_KVCACHE_SPACE`` is unset (the KV cache is then that many GiB).

A deployed instance reads its flags from a ``--config`` YAML (`deploy_launch`): the flag names
without dashes as keys (``--config`` values yield to flags given on the command line, so host
and port stay there); environment settings stay environment variables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from runners.catalog import Architecture, GpuSpec, ModelSpec
from runners.engines.base import (
    EngineAdapter,
    LaunchParts,
    NodeRole,
    SettingInfo,
    listen_flags,
)
from runners.engines.parallel import Parallelism
from runners.engines.versions import VersionRange
from runners.engines.vllm.catalogue import CATALOGUE
from runners.engines.vllm.checks import argument_checks
from runners.types import (
    Candidate,
    Crash,
    NodeGroup,
    ServingConfig,
    SettingValue,
    WeightDtype,
)

CONFIG_FILE = "vllm-config.yaml"


def _batch_defaults(gpu: GpuSpec, newer_tier: bool, world: int = 1) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) for `vllm serve` on this GPU (get_batch_defaults).

    On the CPU backend both scale with the TP x PP world size (2048 and 128 per rank).
    """
    if gpu.is_cpu:
        return 2048 * world, 128 * world
    if newer_tier and gpu.memory_gib_usable >= 160:
        return 16384, 1024
    # vLLM excludes the A100 by its device name; in trait terms, the Ampere architecture
    if gpu.memory_gib_usable >= 70 and gpu.architecture is not Architecture.AMPERE:
        return 8192, 1024
    return 2048, 256


class VllmAdapter(EngineAdapter):
    """vLLM `vllm serve` (0.11.x, 0.32.x as vllm-cpu ships it, and 0.33.x)."""

    name = "vllm"
    supported = (
        VersionRange("0.11", "0.12"),
        VersionRange("0.32", "0.33"),
        VersionRange("0.33", "0.34"),
    )
    newest = "0.33.0"
    default_port = 8000

    @classmethod
    def catalogue(cls) -> tuple[SettingInfo, ...]:
        return CATALOGUE

    def _at_least(self, release: tuple[int, int]) -> bool:
        return self.version.release[:2] >= release

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        table = self.settings()
        explicit = self.normalize(explicit)

        def get(name: str) -> SettingValue:
            info = table[name]
            if name in explicit:
                return explicit[name]
            assert info.default is not None, name
            return info.default

        chunked = bool(get("enable-chunked-prefill")) or not self._at_least((0, 12))
        mode = str(get("performance-mode")) if "performance-mode" in table else "balanced"
        max_model_len = int(explicit.get("max-model-len", model.max_position_embeddings))
        world = int(get("tensor-parallel-size")) * int(get("pipeline-parallel-size"))
        default_tokens, default_seqs = _batch_defaults(gpu, self._at_least((0, 29)), world)
        if mode == "throughput":
            default_tokens, default_seqs = 2 * default_tokens, 2 * default_seqs
        seqs = int(explicit.get("max-num-seqs", default_seqs))
        if "max-num-batched-tokens" in explicit:
            tokens = int(explicit["max-num-batched-tokens"])
        else:
            tokens = default_tokens if chunked else max(max_model_len, default_tokens)
            if self._at_least((0, 12)):
                tokens = min(seqs * max_model_len, tokens)
        if "max-num-seqs" not in explicit:
            seqs = min(seqs, tokens)
        dp = int(get("data-parallel-size"))
        out: dict[str, SettingValue] = {}
        for name, info in table.items():
            if name == "max-model-len":
                out[name] = max_model_len
            elif name == "enable-chunked-prefill":
                out[name] = chunked
            elif name == "max-num-batched-tokens":
                out[name] = tokens
            elif name == "max-num-seqs":
                out[name] = seqs
            elif name == "api-server-count":
                out[name] = int(explicit.get(name, dp))
            elif name == "max-cudagraph-capture-size":
                cap = 1024 if gpu.memory_gib_usable >= 160 else 512
                out[name] = int(explicit.get(name, min(2 * seqs, cap, tokens)))
            elif name == "block-size" and gpu.is_cpu and name not in explicit:
                out[name] = 128  # CpuPlatform's default for its attention backend
            elif name == "async-scheduling" and gpu.is_cpu:
                out[name] = False  # CpuPlatform forces it off whatever the flag says
            elif name == "spec-tokens":
                method = str(get("spec-method"))
                out[name] = int(explicit.get(name, 0)) if method != "none" else 0
            else:
                out[name] = get(name)
            if info.kind == "float":
                out[name] = float(out[name])
        return out

    def parallelism(self, effective: Mapping[str, SettingValue], model: ModelSpec) -> Parallelism:
        tp = int(effective["tensor-parallel-size"])
        dp = int(effective["data-parallel-size"])
        pp = int(effective["pipeline-parallel-size"])
        ep = bool(effective["enable-expert-parallel"]) and tp * dp > 1
        return Parallelism(tp, pp, dp, moe_shards=1 if ep else tp * dp, dense_shards=tp)

    def validate(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> Crash | None:
        world = self.gpus_per_instance(effective, model)
        return argument_checks(effective, world, model, node_group, self.spans_nodes())

    def _backends(self, effective: Mapping[str, SettingValue], fp8: bool) -> tuple[str, str]:
        if "attention-backend" in effective:
            attention = str(effective["attention-backend"])
        else:
            attention = str(effective["VLLM_ATTENTION_BACKEND"])
        if "moe-backend" in effective:
            return attention.lower(), str(effective["moe-backend"])
        moe = "auto"
        if fp8 and effective["VLLM_USE_FLASHINFER_MOE_FP8"]:
            moe = "flashinfer_cutlass"
        elif fp8 and not effective["VLLM_USE_DEEP_GEMM"]:
            moe = "triton"
        return attention.lower(), moe

    def to_serving_config(
        self,
        weight_dtype: WeightDtype,
        effective: Mapping[str, SettingValue],
        model: ModelSpec,
        gpu: GpuSpec,
        node_group: NodeGroup,
    ) -> ServingConfig:
        seqs = int(effective["max-num-seqs"])
        tokens = int(effective["max-num-batched-tokens"])
        kv_dtype = str(effective["kv-cache-dtype"])
        attention, moe = self._backends(effective, weight_dtype == "fp8")
        level = int(effective.get("optimization-level", 2))
        if "max-cudagraph-capture-size" in effective:
            graph_max = int(effective["max-cudagraph-capture-size"])
        else:
            graph_max = min(seqs * 2, 512)
        method = str(effective.get("spec-method", "none"))
        return ServingConfig(
            engine="vllm",
            engine_version=str(self.version),
            model=model,
            gpu=gpu,
            weight_dtype=weight_dtype,
            tensor_parallel=int(effective["tensor-parallel-size"]),
            data_parallel=int(effective["data-parallel-size"]),
            pipeline_parallel=int(effective["pipeline-parallel-size"]),
            expert_parallel=bool(effective["enable-expert-parallel"]),
            max_model_len=int(effective["max-model-len"]),
            mem_fraction=float(effective["gpu-memory-utilization"]),
            max_num_batched_tokens=tokens,
            max_num_seqs=seqs,
            chunked_prefill=bool(effective["enable-chunked-prefill"]),
            prefix_caching=bool(effective["enable-prefix-caching"]),
            kv_cache_dtype="fp8" if kv_dtype.startswith("fp8") else "bf16",
            attention_backend=attention,
            moe_backend=moe,
            cuda_graphs=not effective["enforce-eager"] and level > 0,
            cuda_graph_max_batch=graph_max,
            async_scheduling=bool(effective["async-scheduling"]),
            block_size=int(effective["block-size"]),
            replicas=self.replicas(effective, model, node_group),
            performance_mode=str(effective.get("performance-mode", "balanced")),
            spec_method=None if method == "none" else method,
            spec_tokens=int(effective.get("spec-tokens", 0)),
            stream_interval=int(effective.get("stream-interval", 1)),
            api_server_count=int(effective["api-server-count"]),
        )

    def spans_nodes(self) -> bool:
        """0.32 runs one instance over several nodes with its multiprocessing backend
        (``--nnodes``, ``--node-rank``, ``--master-addr``, ``--master-port``; the other nodes
        ``--headless``). 0.11 spans nodes only through a Ray cluster of its own
        (``--distributed-executor-backend ray``), which this tool does not start."""
        return self._at_least((0, 32))

    def multi_node_parts(self, parts: LaunchParts, role: NodeRole) -> LaunchParts:
        argv = list(parts.argv)
        if role.rank > 0 and "--api-server-count" in argv:
            # headless nodes start no API server: vLLM refuses the flag there
            at = argv.index("--api-server-count")
            del argv[at : at + 2]
        argv += ["--nnodes", str(role.nodes), "--node-rank", str(role.rank)]
        argv += ["--master-addr", role.head]
        if role.dist_port:
            argv += ["--master-port", str(role.dist_port)]
        if role.rank > 0:
            argv.append("--headless")
        return dataclasses.replace(parts, argv=tuple(argv))

    def launch_parts(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int | None,
        devices: tuple[int, ...],
    ) -> LaunchParts:
        argv = ["vllm", "serve", candidate.checkpoint]
        argv += listen_flags(host, port)
        return LaunchParts(argv=(*argv, *self.flags(minimal)), env=tuple(self.env_vars(minimal)))

    def deploy_launch(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int,
    ) -> LaunchParts:
        argv = ["vllm", "serve", candidate.checkpoint]
        return self.config_flag_launch(argv, CONFIG_FILE, minimal, host, port)

    def container_image(self) -> str:
        return f"vllm/vllm-openai:v{self.version.text}"

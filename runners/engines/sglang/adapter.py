"""SGLang `python -m sglang.launch_server` adapter: memory defaults, parallelism, config, launch.

Place in the data flow: the registry entry's adapter; `resolve_candidate` asks it for the
effective settings, argument checks (checks.py) and the engine-neutral `ServingConfig`.
chunked-prefill-size and the decode CUDA-graph batch default by GPU memory (8192 and 256/512
below 90 GB), ``-1`` disables chunked prefill, mem-fraction-static defaults to
``(memory - reserved) / memory`` with a 10 GB reserve floor on GPUs above 60 GB,
max-running-requests is derived from the KV pool when unset (left to the simulator: 0 here),
and EP is carved out of the TP group (``ep_size <= tp_size``).

A deployed instance reads its flags from a ``--config`` YAML (`deploy_launch`; SGLang 0.5.4
already merges it, flag names without dashes as keys, flags on the command line after it).
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
    listen_flags,
)
from runners.engines.parallel import Parallelism
from runners.engines.sglang.catalogue import CATALOGUE
from runners.engines.sglang.checks import argument_checks
from runners.engines.versions import VersionRange
from runners.types import (
    Candidate,
    Crash,
    NodeGroup,
    ServingConfig,
    SettingValue,
    WeightDtype,
)

CONFIG_FILE = "sglang-config.yaml"  # SGLang refuses a --config file without a YAML suffix


def _memory_defaults(gpu: GpuSpec, tp: int, newer: bool) -> tuple[int, int]:
    """(chunked_prefill_size, decode cuda_graph_max_bs) by GPU memory (memory_hook.py)."""
    gb = gpu.memory_gib_usable * 1.073741824
    if gb < 20:
        return 2048, 8
    if gb < 35:
        if newer:
            return 4096, 48 if tp < 4 else 160
        return 2048, 24 if tp < 4 else 80
    if gb < 60:
        return 4096, 32 if tp < 4 else 160
    if gb < 160:
        return 8192, 256 if tp < 4 else 512
    return 16384, 512


def _default_mem_fraction(gpu: GpuSpec, tp: int, chunk: int, graph_bs: int) -> float:
    """mem-fraction-static default: (memory - reserved) / memory, reserve in MiB."""
    total_mib = gpu.memory_gib_usable * 1024
    reserved_mib = 512 + 1.5 * max(chunk, 2048) + 2 * graph_bs + tp / 8 * 1024
    if total_mib > 60 * 1000:
        reserved_mib = max(reserved_mib, 10 * 1024)
    return round((total_mib - reserved_mib) / total_mib, 3)


DIST_INIT_PORT = 5000
"""Rendezvous port on rank 0 when the placement names none (the port SGLang's multi-node
examples use)."""


class SglangAdapter(EngineAdapter):
    """SGLang `python -m sglang.launch_server` (0.5.4 - 0.5.23)."""

    name = "sglang"
    supported = (VersionRange("0.5.4", "0.5.24"),)
    newest = "0.5.23"
    default_port = 30000

    @classmethod
    def catalogue(cls) -> tuple[SettingInfo, ...]:
        return CATALOGUE

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        explicit = self.normalize(explicit)
        tp = int(explicit.get("tp-size", 1))
        newer = self.version.release >= (0, 5, 23)
        default_chunk, default_graph_bs = _memory_defaults(gpu, tp, newer)
        chunk = int(explicit.get("chunked-prefill-size", default_chunk))
        graph_bs = int(
            explicit.get(
                "cuda-graph-max-bs-decode", explicit.get("cuda-graph-max-bs", default_graph_bs)
            )
        )
        derived: dict[str, SettingValue] = {
            "context-length": model.max_position_embeddings,
            "chunked-prefill-size": chunk,
            "max-running-requests": 0,
            "cuda-graph-max-bs": graph_bs,
            "cuda-graph-max-bs-decode": graph_bs,
            "mem-fraction-static": _default_mem_fraction(gpu, tp, chunk, graph_bs),
            "speculative-num-draft-tokens": 0,
        }
        out = self.with_defaults(explicit, derived)
        if out["speculative-algorithm"] == "none":
            out["speculative-num-draft-tokens"] = 0
        return out

    def parallelism(self, effective: Mapping[str, SettingValue], model: ModelSpec) -> Parallelism:
        tp = int(effective["tp-size"])
        pp = int(effective["pp-size"])
        dp = 1 if effective["enable-dp-attention"] else int(effective["dp-size"])
        ep = int(effective["ep-size"])
        moe = max(1, tp // ep) if ep > 1 else tp
        return Parallelism(tp, pp, dp, moe_shards=moe, dense_shards=tp)

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
        chunk = int(effective["chunked-prefill-size"])
        chunked = chunk > 0
        max_prefill = int(effective["max-prefill-tokens"])
        context = int(effective["context-length"])
        kv_dtype = str(effective["kv-cache-dtype"])
        graph_bs = int(effective.get("cuda-graph-max-bs-decode", 0)) or int(
            effective.get("cuda-graph-max-bs", 0)
        )
        spec = str(effective["speculative-algorithm"])
        dp_replicas = 1 if effective["enable-dp-attention"] else int(effective["dp-size"])
        tp, attention_dp = int(effective["tp-size"]), self.attention_dp(effective)
        return ServingConfig(
            engine="sglang",
            engine_version=str(self.version),
            model=model,
            gpu=gpu,
            weight_dtype=weight_dtype,
            tensor_parallel=max(1, tp // attention_dp),
            attention_dp=attention_dp,
            data_parallel=1,
            pipeline_parallel=int(effective["pp-size"]),
            expert_parallel=int(effective["ep-size"]) > 1,
            max_model_len=context,
            mem_fraction=float(effective["mem-fraction-static"]),
            max_num_batched_tokens=chunk if chunked else max(max_prefill, context),
            max_num_seqs=int(effective["max-running-requests"]),
            chunked_prefill=chunked,
            prefix_caching=not effective["disable-radix-cache"],
            kv_cache_dtype="fp8" if kv_dtype.startswith("fp8") else "bf16",
            attention_backend=str(effective["attention-backend"]).lower(),
            moe_backend=str(effective["moe-runner-backend"]),
            cuda_graphs=not effective["disable-cuda-graph"],
            cuda_graph_max_batch=graph_bs,
            async_scheduling=not effective["disable-overlap-schedule"],
            block_size=int(effective["page-size"]),
            schedule_conservativeness=float(effective["schedule-conservativeness"]),
            replicas=self.replicas(effective, model, node_group) * dp_replicas,
            max_prefill_tokens=max_prefill,
            spec_method=None if spec == "none" else spec.lower(),
            spec_tokens=int(effective["speculative-num-draft-tokens"]),
            stream_interval=int(effective["stream-interval"]),
        )

    @staticmethod
    def attention_dp(effective: Mapping[str, SettingValue]) -> int:
        """Attention data-parallel groups inside the TP group: ``--attn-dp-size`` (0.5.23), or
        ``--dp-size`` with ``--enable-dp-attention``."""
        if effective["enable-dp-attention"]:
            return int(effective["dp-size"])
        return int(effective.get("attn-dp-size", 1))

    def replicas(
        self, effective: Mapping[str, SettingValue], model: ModelSpec, node_group: NodeGroup
    ) -> int:
        """Instances that fit the node (each instance's own dp-size replicas come on top)."""
        tp_pp = int(effective["tp-size"]) * int(effective["pp-size"])
        dp = 1 if effective["enable-dp-attention"] else int(effective["dp-size"])
        return max(1, node_group.gpus_per_node // (tp_pp * dp))

    def launch_parts(
        self,
        candidate: Candidate,
        minimal: Mapping[str, SettingValue],
        effective: Mapping[str, SettingValue],
        host: str,
        port: int | None,
        devices: tuple[int, ...],
    ) -> LaunchParts:
        argv = ["python", "-m", "sglang.launch_server", "--model-path", candidate.checkpoint]
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
        argv = ["python", "-m", "sglang.launch_server", "--model-path", candidate.checkpoint]
        return self.config_flag_launch(argv, CONFIG_FILE, minimal, host, port)

    def container_image(self) -> str:
        return f"lmsysorg/sglang:v{self.version.text}"

    def spans_nodes(self) -> bool:
        """Every 0.5 release runs one instance over several nodes: the same command on each
        node with ``--nnodes``, ``--node-rank`` and ``--dist-init-addr`` (rank 0 serves)."""
        return True

    def multi_node_parts(self, parts: LaunchParts, role: NodeRole) -> LaunchParts:
        port = role.dist_port or DIST_INIT_PORT
        argv = (
            *parts.argv,
            "--nnodes",
            str(role.nodes),
            "--node-rank",
            str(role.rank),
            "--dist-init-addr",
            f"{role.head}:{port}",
        )
        return dataclasses.replace(parts, argv=argv)

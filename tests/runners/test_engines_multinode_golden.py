"""Golden multi-node launches: for every engine release that runs one instance over several
nodes, the exact argv, env and files on each node; and the releases that cannot span nodes."""

from __future__ import annotations

import pytest
import yaml

from runners.engines import get_engine, render, render_nodes, resolve_candidate
from runners.errors import EngineError
from runners.types import Candidate, NodeGroup, NodeSlot, Placement, SettingValue

GROUP = NodeGroup("h100x8x2", "H100-SXM-80GB", 8, 2, 50.0)
IDS = tuple(range(8))
TWO_NODES = Placement(
    GROUP,
    IDS,
    others=(NodeSlot("10.0.0.2", IDS),),
    head_address="10.0.0.1",
    dist_port=29650,
    others_started=True,
)
MOE = "Qwen3-235B-A22B-Instruct-2507"
CKPT = "Qwen/Qwen3-235B-A22B-Instruct-2507"
HEAD = ("--host", "127.0.0.1", "--port", "9000")
GPUS = ("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")


def candidate(engine: str, version: str, settings: dict[str, SettingValue]) -> Candidate:
    return Candidate.make(engine, version, MOE, CKPT, "bf16", settings)


GOLDEN: list[tuple[str, str, dict[str, SettingValue], tuple[tuple[str, ...], tuple[str, ...]]]] = [
    (
        "vllm",
        "0.33.0",
        {"tensor-parallel-size": 8, "pipeline-parallel-size": 2, "max-num-seqs": 256},
        (
            (
                "vllm",
                "serve",
                CKPT,
                *HEAD,
                "--tensor-parallel-size",
                "8",
                "--pipeline-parallel-size",
                "2",
                "--max-num-seqs",
                "256",
                "--nnodes",
                "2",
                "--node-rank",
                "0",
                "--master-addr",
                "10.0.0.1",
                "--master-port",
                "29650",
            ),
            (
                "vllm",
                "serve",
                CKPT,
                *HEAD,
                "--tensor-parallel-size",
                "8",
                "--pipeline-parallel-size",
                "2",
                "--max-num-seqs",
                "256",
                "--nnodes",
                "2",
                "--node-rank",
                "1",
                "--master-addr",
                "10.0.0.1",
                "--master-port",
                "29650",
                "--headless",
            ),
        ),
    ),
    (
        # DP attention + EP over both nodes: 16 DP ranks, 8 per node; headless nodes start no
        # API server, so vLLM refuses --api-server-count there
        "vllm",
        "0.32.0",
        {
            "data-parallel-size": 16,
            "enable-expert-parallel": True,
            "api-server-count": 4,
        },
        (
            (
                "vllm",
                "serve",
                CKPT,
                *HEAD,
                "--data-parallel-size",
                "16",
                "--enable-expert-parallel",
                "--api-server-count",
                "4",
                "--nnodes",
                "2",
                "--node-rank",
                "0",
                "--master-addr",
                "10.0.0.1",
                "--master-port",
                "29650",
            ),
            (
                "vllm",
                "serve",
                CKPT,
                *HEAD,
                "--data-parallel-size",
                "16",
                "--enable-expert-parallel",
                "--nnodes",
                "2",
                "--node-rank",
                "1",
                "--master-addr",
                "10.0.0.1",
                "--master-port",
                "29650",
                "--headless",
            ),
        ),
    ),
    (
        "sglang",
        "0.5.23",
        {"tp-size": 16, "attn-dp-size": 16, "ep-size": 16},
        tuple(
            (
                "python",
                "-m",
                "sglang.launch_server",
                "--model-path",
                CKPT,
                *HEAD,
                "--tp-size",
                "16",
                "--attn-dp-size",
                "16",
                "--ep-size",
                "16",
                "--nnodes",
                "2",
                "--node-rank",
                rank,
                "--dist-init-addr",
                "10.0.0.1:29650",
            )
            for rank in ("0", "1")
        ),
    ),
    (
        "sglang",
        "0.5.4",
        {"tp-size": 8, "pp-size": 2},
        tuple(
            (
                "python",
                "-m",
                "sglang.launch_server",
                "--model-path",
                CKPT,
                *HEAD,
                "--tp-size",
                "8",
                "--pp-size",
                "2",
                "--nnodes",
                "2",
                "--node-rank",
                rank,
                "--dist-init-addr",
                "10.0.0.1:29650",
            )
            for rank in ("0", "1")
        ),
    ),
    (
        # one MPI job started on node 0; node 1 has nothing of its own to start
        "trtllm",
        "1.2.0",
        {"tp_size": 16, "ep_size": 16, "max_batch_size": 512},
        (
            (
                "mpirun",
                "-np",
                "16",
                "-H",
                "10.0.0.1:8,10.0.0.2:8",
                "-x",
                "CUDA_VISIBLE_DEVICES",
                "trtllm-llmapi-launch",
                "trtllm-serve",
                CKPT,
                *HEAD,
                "--tp_size",
                "16",
                "--ep_size",
                "16",
                "--max_batch_size",
                "512",
            ),
            (),
        ),
    ),
]


@pytest.mark.parametrize(
    ("engine", "version", "settings", "argvs"),
    GOLDEN,
    ids=[f"{g[0]}-{g[1]}-{'-'.join(map(str, g[2].values()))}" for g in GOLDEN],
)
def test_each_node_gets_its_exact_launch(
    engine: str,
    version: str,
    settings: dict[str, SettingValue],
    argvs: tuple[tuple[str, ...], ...],
) -> None:
    launches = render_nodes(candidate(engine, version, settings), TWO_NODES, 9000)
    assert tuple(launch.argv for launch in launches) == argvs
    for launch in launches:
        assert launch.env == (GPUS,)
        assert (launch.host, launch.port) == ("127.0.0.1", 9000)
        assert launch.health_url == "http://127.0.0.1:9000/health"


def test_tensorrt_llm_writes_its_options_on_the_node_that_launches_and_forwards_env() -> None:
    settings: dict[str, SettingValue] = {
        "tp_size": 16,
        "enable_attention_dp": True,
        "kv_cache_config.dtype": "fp8",
    }
    head, other = render_nodes(candidate("trtllm", "1.2.0", settings), TWO_NODES, 9000)
    assert head.argv[:8] == (
        "mpirun",
        "-np",
        "16",
        "-H",
        "10.0.0.1:8,10.0.0.2:8",
        "-x",
        "CUDA_VISIBLE_DEVICES",
        "trtllm-llmapi-launch",
    )
    assert head.argv[-2:] == ("--extra_llm_api_options", "extra-llm-api-options.yaml")
    [(name, text)] = head.files
    assert name == "extra-llm-api-options.yaml"
    assert yaml.safe_load(text) == {
        "enable_attention_dp": True,
        "kv_cache_config": {"dtype": "fp8"},
    }
    assert other.argv == () and other.files == ()


def test_each_node_sees_its_own_devices() -> None:
    placement = Placement(
        GROUP, (4, 5, 6, 7), others=(NodeSlot("10.0.0.2", (0, 1, 2, 3)),), head_address="h"
    )
    settings: dict[str, SettingValue] = {"tensor-parallel-size": 4, "pipeline-parallel-size": 2}
    head, other = render_nodes(candidate("vllm", "0.33.0", settings), placement, 9000)
    assert head.env == (("CUDA_VISIBLE_DEVICES", "4,5,6,7"),)
    assert other.env == (("CUDA_VISIBLE_DEVICES", "0,1,2,3"),)
    assert "--master-port" not in head.argv, "port 0: the engine's default rendezvous port"


def test_one_node_renders_exactly_the_one_node_launch() -> None:
    one = Placement(NodeGroup("h100x8", "H100-SXM-80GB", 8), IDS)
    for engine, version, settings, _ in GOLDEN:
        chosen = candidate(engine, version, settings)
        assert render_nodes(chosen, one, 9000) == (render(chosen, one, 9000),)


@pytest.mark.parametrize(
    ("engine", "version", "settings", "engine_text"),
    [
        (
            "vllm",
            "0.11.0",
            {"tensor-parallel-size": 16},
            "World size (16) is larger than the number of available GPUs (8) in this node.",
        ),
        (
            "mindie",
            "2.3.0",
            {"worldSize": 16},
            "worldSize (16) is larger than the 8 NPUs of this node",
        ),
    ],
)
def test_releases_that_cannot_span_nodes_keep_their_one_node_error(
    engine: str, version: str, settings: dict[str, SettingValue], engine_text: str
) -> None:
    gpu = "Ascend-910B" if engine == "mindie" else "H100-SXM-80GB"
    model, ckpt = ("Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B") if engine == "mindie" else (MOE, CKPT)
    chosen = Candidate.make(engine, version, model, ckpt, "bf16", settings)
    group = NodeGroup("g", gpu, 8, 2, 50.0)
    assert not get_engine(engine, version).spans_nodes()
    resolved = resolve_candidate(chosen, group)
    assert resolved.problem is not None and engine_text in resolved.problem.message
    placement = Placement(group, IDS, others=(NodeSlot("10.0.0.2", IDS),), head_address="h")
    with pytest.raises(EngineError, match="cannot run one instance over several nodes"):
        render_nodes(chosen, placement, 9000)


def test_the_copy_paste_command_names_every_node() -> None:
    settings: dict[str, SettingValue] = {"tensor-parallel-size": 8, "pipeline-parallel-size": 2}
    resolved = resolve_candidate(candidate("vllm", "0.33.0", settings), GROUP)
    assert resolved.serve_command == (
        f"[node 0] vllm serve {CKPT} --tensor-parallel-size 8 --pipeline-parallel-size 2 "
        "--nnodes 2 --node-rank 0 --master-addr NODE0_IP "
        f"[node 1] vllm serve {CKPT} --tensor-parallel-size 8 --pipeline-parallel-size 2 "
        "--nnodes 2 --node-rank 1 --master-addr NODE0_IP --headless"
    )
    trt = resolve_candidate(candidate("trtllm", "1.2.0", {"tp_size": 16}), GROUP)
    assert trt.serve_command == (
        "[node 0] mpirun -np 16 -H NODE0_IP:8,NODE1_IP:8 -x CUDA_VISIBLE_DEVICES "
        f"trtllm-llmapi-launch trtllm-serve {CKPT} --tp_size 16"
    )

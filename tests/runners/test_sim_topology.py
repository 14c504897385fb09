"""The simulator on instances spanning nodes: where ranks sit, collectives over the network,
pipeline stages, attention data parallelism; and a one-node instance costed as before."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from runners.catalog import resolve_checkpoint
from runners.engines import resolve_candidate
from runners.errors import CatalogError
from runners.sim import params, simulate
from runners.sim.comm import Collectives, allreduce_alpha_s, layout
from runners.sim.memory import plan_memory
from runners.sim.perf import StepModel
from runners.types import Candidate, NodeGroup, ServingConfig, SettingValue, Workload

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"
TWO = NodeGroup("two", "H100-SXM-80GB", 8, 2, 50.0)
WORK = Workload(name="w", dataset="random", num_prompts=256, input_len=1024, output_len=64)
MOE = "Qwen3-235B-A22B-Instruct-2507"


def config(
    engine: str, settings: dict[str, SettingValue], group: NodeGroup = TWO, model: str = MOE
) -> ServingConfig:
    version = {"vllm": "0.33.0", "sglang": "0.5.23", "trtllm": "1.2.0"}[engine]
    if model == MOE:
        checkpoint, fmt = f"Qwen/{MOE}", "bf16"
    else:
        found = resolve_checkpoint(model, config=MODELS / "deepseek-ai--DeepSeek-V3.json")
        checkpoint, fmt, model = model, "fp8", found.model.name
    candidate = Candidate.make(engine, version, model, checkpoint, fmt, settings)  # type: ignore[arg-type]
    resolved = resolve_candidate(candidate, group)
    assert resolved.config is not None, resolved.problem
    return resolved.config


def out_tok_s(cfg: ServingConfig) -> float:
    result = simulate(cfg, WORK)
    assert result.records is not None, result.crash
    return float(result.records.output_len.sum() / result.records.duration_s)


def test_ranks_fill_the_nodes_tp_innermost() -> None:
    pipeline = layout(config("vllm", {"tensor-parallel-size": 8, "pipeline-parallel-size": 2}), 1)
    assert (pipeline.tensor.nodes, pipeline.stages, pipeline.crossing_boundaries) == (1, 2, 1)
    wide = layout(config("vllm", {"tensor-parallel-size": 16}), 1)
    assert (wide.tensor.ranks, wide.tensor.nodes, wide.tensor.per_node) == (16, 2, 8)
    dp = config("vllm", {"data-parallel-size": 16, "enable-expert-parallel": True})
    spread = layout(dp, 16)
    assert (spread.tensor.nodes, spread.moe.ranks, spread.moe.nodes, spread.moe.per_node) == (
        1,
        16,
        2,
        8,
    )
    one = layout(config("vllm", {"tensor-parallel-size": 8}), 1)
    assert (one.tensor.nodes, one.crossing_boundaries) == (1, 0)


def test_on_one_node_a_collective_costs_exactly_the_one_node_formula() -> None:
    cfg = config("vllm", {"tensor-parallel-size": 8}, NodeGroup("one", "H100-SXM-80GB", 8))
    link = 450e9 * params.LINK_EFF
    comm = Collectives(cfg, link, 1)
    tokens = np.arange(1.0, 200.0)
    act = 4096 * 2.0
    expected = allreduce_alpha_s(cfg, 8) + 2.0 * (8 - 1) / 8 * tokens * act / link
    assert np.array_equal(comm.allreduce_s(comm.layout.tensor, tokens, act), expected)
    assert np.array_equal(comm.handoff_s(tokens, act), np.zeros_like(tokens))


def test_across_nodes_each_rank_sends_its_share_over_its_network() -> None:
    cfg = config("vllm", {"tensor-parallel-size": 16})
    link = 450e9 * params.LINK_EFF
    comm = Collectives(cfg, link, 1)
    tokens, act = np.array([4096.0]), 4096 * 2.0
    span = comm.layout.tensor
    intra = allreduce_alpha_s(cfg, 8) + 2.0 * 7 / 8 * tokens * act / link
    inter = 2.0 * params.INTER_NODE_ALPHA_S + 2.0 * 1 / 2 * tokens * act / (8 * comm.inter_bw)
    assert comm.allreduce_s(span, tokens, act) == pytest.approx(intra + inter)
    assert comm.inter_bw == 50e9 * params.INTER_NODE_EFF
    one_node_16 = allreduce_alpha_s(cfg, 16) + 2.0 * 15 / 16 * tokens * act / link
    assert comm.allreduce_s(span, tokens, act)[0] > one_node_16[0], "the network is slower"


def test_a_faster_network_serves_a_spanning_instance_faster() -> None:
    slow = config("vllm", {"tensor-parallel-size": 16})
    fast = dataclasses.replace(slow, inter_node_gb_s=900.0)  # an NVLink-class rack
    assert out_tok_s(fast) > out_tok_s(slow) * 1.05
    model_slow = StepModel(slow, 4096)
    model_fast = StepModel(fast, 4096)
    assert model_slow.t_tokens_s[256] > model_fast.t_tokens_s[256]


def test_an_unknown_network_is_an_error_naming_the_node_groups_network() -> None:
    unknown = dataclasses.replace(
        config("vllm", {"tensor-parallel-size": 16}), inter_node_gb_s=None
    )
    with pytest.raises(CatalogError, match=r"hardware\.node_groups\[\]\.network"):
        StepModel(unknown, 1024)


def test_pipeline_stages_split_weights_and_kv_and_hand_off_activations() -> None:
    single = config("vllm", {"tensor-parallel-size": 8, "max-model-len": 32768})
    staged = config(
        "vllm", {"tensor-parallel-size": 8, "pipeline-parallel-size": 2, "max-model-len": 32768}
    )
    plan_single, plan_staged = plan_memory(single), plan_memory(staged)
    assert plan_staged.weights_gib < 0.55 * plan_single.weights_gib
    assert plan_staged.kv_bytes_per_token * 2 == plan_single.kv_bytes_per_token
    assert plan_staged.kv_tokens > 2 * plan_single.kv_tokens
    assert staged.gpus_per_replica == 16
    handoff = StepModel(staged, 4096).comm.handoff_s(np.array([512.0]), 4096 * 2.0)
    inter = params.INTER_NODE_ALPHA_S + 512 * 4096 * 2.0 / (50e9 * params.INTER_NODE_EFF)
    assert handoff[0] == pytest.approx(inter), "one boundary, across the nodes"


def test_attention_data_parallelism_stops_copying_the_mla_latent_on_every_gpu() -> None:
    deepseek = "deepseek-ai/DeepSeek-V3"
    tp16 = config("sglang", {"tp-size": 16, "context-length": 16384}, model=deepseek)
    dp_attn = config(
        "sglang",
        {"tp-size": 16, "attn-dp-size": 16, "ep-size": 16, "context-length": 16384},
        model=deepseek,
    )
    assert (dp_attn.tensor_parallel, dp_attn.attention_dp, dp_attn.nodes) == (1, 16, 2)
    assert dp_attn.gpus_per_replica == tp16.gpus_per_replica == 16
    plan_tp16, plan_dp = plan_memory(tp16), plan_memory(dp_attn)
    # every GPU caches the same latent per token either way, but with attention DP each holds
    # its own sequences (less room per GPU: attention weights are no longer split 16 ways)
    assert plan_dp.kv_bytes_per_token == plan_tp16.kv_bytes_per_token
    assert plan_dp.weights_gib > plan_tp16.weights_gib
    assert plan_dp.kv_tokens_per_replica == 16 * plan_dp.kv_tokens
    assert plan_dp.kv_tokens_per_replica > 4 * plan_tp16.kv_tokens_per_replica
    trt = config(
        "trtllm",
        {"tp_size": 16, "ep_size": 16, "enable_attention_dp": True, "max_seq_len": 16384},
        model=deepseek,
    )
    assert (trt.tensor_parallel, trt.attention_dp) == (1, 16)


@pytest.mark.parametrize(
    ("engine", "settings"),
    [
        ("vllm", {"tensor-parallel-size": 8, "pipeline-parallel-size": 2}),
        ("vllm", {"tensor-parallel-size": 16}),
        ("vllm", {"data-parallel-size": 16, "enable-expert-parallel": True}),
        ("sglang", {"tp-size": 16, "attn-dp-size": 16, "ep-size": 16}),
    ],
)
def test_deepseek_v3_over_two_nodes_of_h100_is_served(
    engine: str, settings: dict[str, SettingValue]
) -> None:
    length = "max-model-len" if engine == "vllm" else "context-length"
    cfg = config(engine, {**settings, length: 16384}, model="deepseek-ai/DeepSeek-V3")
    assert cfg.nodes == 2
    assert 1000.0 < out_tok_s(cfg) < 100_000.0

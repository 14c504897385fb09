"""Where an instance sits on its node group: the nodes it spans, the network between them, the
checks that decide whether it fits, and what one trial holds (`trial_shape`)."""

from __future__ import annotations

import dataclasses

import pytest

from runners.catalog import get_gpu
from runners.engines import instance_nodes, network_gb_s, resolve_candidate, with_topology
from runners.engines.rules import Subject
from runners.engines.topology import node_limit_crash
from runners.engines.vllm.checks import RULES as VLLM_RULES
from runners.pool import TrialShape, local_placement, trial_placement, trial_shape
from runners.types import Candidate, CrashClass, NodeGroup, NodeSlot, SettingValue

H100 = "H100-SXM-80GB"
TWO = NodeGroup("two", H100, 8, 2)
MOE = "Qwen3-235B-A22B-Instruct-2507"


def vllm(settings: dict[str, SettingValue]) -> Candidate:
    return Candidate.make("vllm", "0.33.0", MOE, f"Qwen/{MOE}", "bf16", settings)


@pytest.mark.parametrize(
    ("gpus", "per_node", "nodes"), [(1, 8, 1), (8, 8, 1), (9, 8, 2), (16, 8, 2), (24, 8, 3)]
)
def test_an_instance_takes_the_fewest_nodes_that_hold_it(
    gpus: int, per_node: int, nodes: int
) -> None:
    assert instance_nodes(gpus, per_node) == nodes


def test_the_network_is_the_node_groups_own_else_the_gpus_typical_figure() -> None:
    gpu = get_gpu(H100)
    assert network_gb_s(NodeGroup("g", H100, 8, 2, 100.0), gpu) == 100.0
    assert network_gb_s(TWO, gpu) == gpu.inter_node_gb_s == 50.0


def test_a_replica_on_one_node_is_left_alone_and_a_spanning_one_records_its_nodes() -> None:
    one = resolve_candidate(vllm({"tensor-parallel-size": 8}), TWO).config
    assert one is not None and (one.nodes, one.inter_node_gb_s) == (1, None)
    assert with_topology(one, TWO) is one
    span = resolve_candidate(vllm({"tensor-parallel-size": 16}), NodeGroup("g", H100, 8, 2, 25.0))
    assert span.problem is None and span.config is not None
    assert (span.config.nodes, span.config.inter_node_gb_s) == (2, 25.0)
    assert span.replicas == 1 and span.instance_gpus == 16


def test_fitting_the_node_group() -> None:
    text = "the engine's one-node text"
    assert node_limit_crash(8, TWO, True, text) is None
    assert node_limit_crash(16, TWO, True, text) is None
    refused = node_limit_crash(16, TWO, False, text)
    assert refused is not None and refused.message == text
    assert refused.crash_class == CrashClass.TOO_MANY_GPUS
    one_node = node_limit_crash(16, NodeGroup("one", H100, 8), True, text)
    assert one_node is not None and one_node.message == text
    too_big = node_limit_crash(24, TWO, True, text)
    assert too_big is not None
    assert too_big.message == (
        "one instance needs 24 GPUs (3 nodes of 8); the node group has 2 nodes of 8 GPUs"
    )


def test_vllm_refuses_nodes_that_do_not_divide_the_world() -> None:
    config = resolve_candidate(vllm({"tensor-parallel-size": 16}), TWO).config
    assert config is not None
    [rule] = [r for r in VLLM_RULES if r.id == "nodes_divide_world"]
    assert rule.preflight
    split = resolve_candidate(vllm({"tensor-parallel-size": 16}), TWO).split
    assert rule.check(Subject(config, split)) is None
    odd = dataclasses.replace(config, tensor_parallel=3, pipeline_parallel=3)
    crash = rule.check(Subject(odd, split))
    assert crash is not None
    assert "`--nnodes 2` must evenly divide the total world size (9)" in crash.message


@pytest.mark.parametrize(
    ("settings", "fill", "shape"),
    [
        ({"tensor-parallel-size": 4}, True, TrialShape(1, 8)),
        ({"tensor-parallel-size": 4}, False, TrialShape(1, 4)),
        ({"tensor-parallel-size": 16}, True, TrialShape(2, 8)),
        ({"tensor-parallel-size": 8, "pipeline-parallel-size": 2}, False, TrialShape(2, 8)),
        ({"tensor-parallel-size": 4, "pipeline-parallel-size": 3}, False, TrialShape(2, 6)),
        ({"tensor-parallel-size": 4, "pipeline-parallel-size": 3}, True, TrialShape(2, 8)),
    ],
)
def test_what_one_trial_holds(
    settings: dict[str, SettingValue], fill: bool, shape: TrialShape
) -> None:
    assert trial_shape(vllm(settings), TWO, fill) == shape


def test_a_group_with_too_few_nodes_gives_one_node_and_the_engine_fails_there() -> None:
    one = NodeGroup("one", H100, 8)
    assert trial_shape(vllm({"tensor-parallel-size": 16}), one, True) == TrialShape(1, 8)
    assert trial_shape(vllm({"tensor-parallel-size": 16}), one, False) == TrialShape(1, 8)
    resolved = resolve_candidate(vllm({"tensor-parallel-size": 16}), one)
    assert resolved.problem is not None
    assert resolved.problem.crash_class == CrashClass.TOO_MANY_GPUS


def test_the_runners_view_of_a_spanning_trial_keeps_the_network() -> None:
    group = NodeGroup("g", H100, 8, 4, 50.0)
    placement = trial_placement(
        group, (0, 1), others=(NodeSlot("10.0.0.2", (2, 3)),), head_address="10.0.0.1"
    )
    assert placement.node_group == NodeGroup("g", H100, 2, 2, 50.0)
    assert [node.host for node in placement.nodes] == ["10.0.0.1", "10.0.0.2"]
    assert placement.gpu_count == 4
    local = local_placement(group, TrialShape(2, 8))
    assert local.node_group == NodeGroup("g", H100, 8, 2, 50.0)
    assert [node.gpu_ids for node in local.nodes] == [tuple(range(8))] * 2
    assert not local.others_started

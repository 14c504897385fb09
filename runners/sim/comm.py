"""Communication time of one engine step: collectives inside an instance, and where its ranks sit.

Built once per trial by `perf.StepModel`, which asks it for the time of each collective over
the tokens of a step. Ranks are numbered as the engines number them (TP innermost, then data
parallel ranks or attention-DP groups, then pipeline stages outermost) and fill the nodes of
the instance in order (`ServingConfig.nodes`, the same number of GPUs on each). A group on one
node runs over the intra-node link: α(n) + volume / link (the all-reduce of the TP group, the
all-gather dispatch and reduce-scatter combine of MoE layers sharded over TP x DP). A group
spanning m nodes with g of its ranks on each runs hierarchically, as NCCL does on
rail-optimized clusters: the intra-node part over the link among g ranks, then the inter-node
part of each rank's 1/g share over that rank's own share of the network
(`inter_node_gb_s`), with a latency per inter-node step. Pipeline stages hand a micro-batch's
activations to the next stage, over the link or, across nodes, over the network.
A network the GPU's sources and the node group leave unknown is a `CatalogError` naming the
node group's `network`, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runners.bench.records import FloatArray
from runners.errors import CatalogError
from runners.sim import params
from runners.types import ServingConfig


def allreduce_alpha_s(config: ServingConfig, ranks: int) -> float:
    """Latency of one collective among `ranks` ranks over the intra-node link."""
    alpha = params.AR_ALPHA_BASE_S + params.AR_ALPHA_PER_RANK_S * ranks
    if config.gpu.interconnect == "pcie":
        alpha *= params.PCIE_ALPHA_FACTOR
    return alpha


@dataclass(frozen=True)
class Span:
    """How one group of ranks sits on the nodes: its size, the nodes it spans and the most of
    its ranks on one node."""

    ranks: int
    nodes: int
    per_node: int


def _span(members: list[int], gpus_per_node: int) -> Span:
    by_node: dict[int, int] = {}
    for rank in members:
        node = rank // gpus_per_node
        by_node[node] = by_node.get(node, 0) + 1
    return Span(len(members), len(by_node), max(by_node.values()))


@dataclass(frozen=True)
class Layout:
    """Where the ranks of one replica sit: the TP group, the group the MoE layers are
    sharded over (TP x DP ranks of one stage), and how many of the pipeline's stage
    boundaries cross nodes."""

    tensor: Span
    moe: Span
    stages: int
    crossing_boundaries: int


def layout(config: ServingConfig, cores: int) -> Layout:
    """The layout of one replica with `cores` data-parallel ranks (engine cores or
    attention-DP groups) of `tensor_parallel` ranks, in `pipeline_parallel` stages."""
    tp, pp = config.tensor_parallel, config.pipeline_parallel
    per_node = max(1, tp * cores * pp // max(1, config.nodes))

    def rank(dp: int, stage: int, t: int) -> int:
        return (dp * pp + stage) * tp + t

    tensor = _span([rank(0, 0, t) for t in range(tp)], per_node)
    moe = _span([rank(d, 0, t) for d in range(cores) for t in range(tp)], per_node)
    nodes_of = [{rank(0, s, t) // per_node for t in range(tp)} for s in range(pp)]
    crossing = sum(1 for s in range(pp - 1) if nodes_of[s] != nodes_of[s + 1])
    return Layout(tensor, moe, pp, crossing)


class Collectives:
    """Collective times of one trial's replica (seconds, for arrays of per-step volumes)."""

    def __init__(self, config: ServingConfig, link_bw: float, cores: int) -> None:
        self.config = config
        self.link_bw = link_bw
        self.layout = layout(config, cores)
        self.inter_bw = 0.0
        if config.nodes > 1:
            if config.inter_node_gb_s is None:
                raise CatalogError(
                    f"{config.gpu.name}: the network between the nodes is unknown (no source "
                    f"gives a figure for this GPU), so an instance over {config.nodes} nodes "
                    "cannot be simulated; give the node group its network "
                    "(hardware.node_groups[].network: nics, gbit_s), or run it with a real "
                    "runner"
                )
            self.inter_bw = config.inter_node_gb_s * 1e9 * params.INTER_NODE_EFF

    def allreduce_s(self, span: Span, tokens: FloatArray, act: float) -> FloatArray:
        """An all-reduce of `tokens` x `act` bytes per rank among the ranks of `span`."""
        n = span.ranks
        if span.nodes == 1:
            alpha = allreduce_alpha_s(self.config, n)
            return np.asarray(alpha + 2.0 * (n - 1) / n * tokens * act / self.link_bw)
        g, m = span.per_node, span.nodes
        intra = allreduce_alpha_s(self.config, g) + 2.0 * (g - 1) / g * tokens * act / self.link_bw
        inter = 2.0 * (m - 1) * params.INTER_NODE_ALPHA_S + 2.0 * (m - 1) / m * tokens * act / (
            g * self.inter_bw
        )
        return np.asarray(intra + inter)

    def allgather_s(self, span: Span, tokens: FloatArray, act: float) -> FloatArray:
        """An all-gather (or reduce-scatter) of `tokens` x `act` bytes in all among the ranks
        of `span`."""
        n = span.ranks
        if span.nodes == 1:
            alpha = allreduce_alpha_s(self.config, n)
            return np.asarray(alpha + (n - 1) / n * tokens * act / self.link_bw)
        g, m = span.per_node, span.nodes
        intra = allreduce_alpha_s(self.config, g) + (g - 1) / g * tokens * act / self.link_bw
        inter = (m - 1) * params.INTER_NODE_ALPHA_S + (m - 1) / m * tokens * act / (
            g * self.inter_bw
        )
        return np.asarray(intra + inter)

    def handoff_s(self, tokens: FloatArray, act: float) -> FloatArray:
        """The stage-to-stage sends of one micro-batch of `tokens` x `act` bytes along the
        whole pipeline (zero without pipeline parallelism)."""
        boundaries = self.layout.stages - 1
        if boundaries == 0:
            return np.zeros_like(tokens)
        crossing = self.layout.crossing_boundaries
        local = boundaries - crossing
        volume = tokens * act
        out = local * (params.P2P_ALPHA_S + volume / self.link_bw)
        if crossing:
            out = out + crossing * (params.INTER_NODE_ALPHA_S + volume / self.inter_bw)
        return np.asarray(out, dtype=np.float64)


__all__ = ["Collectives", "Layout", "Span", "allreduce_alpha_s", "layout"]

"""The TrialPool conformance suite (runners.testing.pool) against the sequential InlinePool.
RayPool runs the same suite in tests/runners/test_ray_pool.py, on its local Ray cluster."""

from __future__ import annotations

from runners import Runner
from runners.pool import InlinePool, TrialPool
from runners.testing.pool import TrialPoolConformance
from runners.types import NodeGroup


class TestInlinePool(TrialPoolConformance):
    spanning_node_group = NodeGroup("ab", "H100-SXM-80GB", 8, 2, 50.0)

    def make_pool(self, runner: Runner, fill_node_group: bool) -> TrialPool:
        return InlinePool(runner, self.node_group, fill_node_group)

    def make_spanning_pool(self, runner: Runner, fill_node_group: bool) -> TrialPool:
        assert self.spanning_node_group is not None
        return InlinePool(runner, self.spanning_node_group, fill_node_group)

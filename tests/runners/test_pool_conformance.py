"""The TrialPool conformance suite (runners.testing.pool) against the sequential InlinePool.
RayPool runs the same suite in tests/runners/test_ray_pool.py, on its local Ray cluster."""

from __future__ import annotations

from runners import Runner
from runners.pool import InlinePool, TrialPool
from runners.testing.pool import TrialPoolConformance


class TestInlinePool(TrialPoolConformance):
    def make_pool(self, runner: Runner, fill_node_group: bool) -> TrialPool:
        return InlinePool(runner, self.node_group, fill_node_group)

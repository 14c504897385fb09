"""How to run one configuration and measure it. Never imports optuna or optimizer.

The search hands a `Candidate`, a `Workload` and a `Placement` to a `Runner` and gets a
`TrialOutcome` back. Runners never raise for engine faults: a configuration that fails is a
`Crash` inside the outcome. `SimRunner` (runners.sim.runner) is the embedded default.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    Distribution,
    LaunchSpec,
    Metrics,
    NodeGroup,
    Placement,
    ServingConfig,
    TrialOutcome,
    Workload,
)


class Runner(Protocol):
    """Runs one candidate to completion and reports what happened.

    Blocking; owns and cleans up whatever it starts. Must not raise for engine faults
    (startup failure, OOM, crash under load): those are reported as a `Crash`.
    """

    def run(
        self, candidate: Candidate, workload: Workload, placement: Placement
    ) -> TrialOutcome: ...


@runtime_checkable
class NodeStarter(Protocol):
    """A runner that starts processes per node: it starts node `rank`'s part of an instance
    spanning nodes, when the pool's own worker on that node asks (`Placement.others_started`);
    the process runs until that worker ends."""

    def start_node(self, candidate: Candidate, placement: Placement, rank: int) -> None: ...


__all__ = [
    "Candidate",
    "Crash",
    "CrashClass",
    "Distribution",
    "LaunchSpec",
    "Metrics",
    "NodeGroup",
    "NodeStarter",
    "Placement",
    "Runner",
    "ServingConfig",
    "TrialOutcome",
    "Workload",
]

"""Before the first real trial: is every node that will run trials ready for them?

Place in the data flow: the command line (`optimizer.cli.main`, and `optimizer.validate`) calls
this after building a real runner and before the study's storage is opened, so a node that
cannot run trials stops the command with exit status 2 and nothing stored. `readiness_request`
turns the space file into what a node must offer (`runners.readiness.ReadinessRequest`): the
program of every engine searched, as the runner starts it, every checkpoint (local paths made
absolute here, on the driver, as the pools do), the declared device and its count per node.
`check_local` checks this machine; with Ray, `runners.ray.readiness.check_ray_nodes` checks
every node of the node groups and `ensure_ready` turns the reports into one error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from optimizer.errors import NotReadyError
from optimizer.spec.models import StudySpec
from runners.checkpoint import absolute_checkpoint
from runners.local import LocalRunner
from runners.pool import trial_placement
from runners.readiness import NodeReport, ReadinessRequest, check_node
from runners.types import Candidate


def readiness_request(spec: StudySpec, runner: LocalRunner) -> ReadinessRequest:
    """What every node must offer for `spec`'s trials, run by `runner`."""
    group = spec.node_group
    placement = trial_placement(group, tuple(range(group.gpus_per_node)))
    programs = []
    checkpoints = []
    for engine, section in spec.engines.items():
        for variant in spec.model.variants:
            checkpoint = spec.model.checkpoint(variant)
            candidate = absolute_checkpoint(
                Candidate.make(engine, section.version, spec.model.name, checkpoint, variant, {})
            )
            programs.append(runner.launcher.program(candidate, placement))
            checkpoints.append(candidate.checkpoint)
    return ReadinessRequest(
        programs=tuple(dict.fromkeys(programs)),
        checkpoints=tuple(dict.fromkeys(checkpoints)),
        gpu=group.gpu,
        gpus_per_node=group.gpus_per_node,
        host=placement.host,
    )


def check_local(spec: StudySpec, runner: LocalRunner) -> None:
    """`NotReadyError` unless this machine can run `spec`'s trials with `runner`."""
    ensure_ready([check_node(readiness_request(spec, runner))])


def ensure_ready(reports: Sequence[NodeReport]) -> None:
    """One `NotReadyError` naming every node's problems and Python environment, if any."""
    failed = [report for report in reports if not report.ready]
    if not failed:
        return
    lines = ["not ready for real trials; nothing was started or stored:"]
    for report in failed:
        lines.append(f"  on node {report.node}, Python environment {report.python}:")
        lines.extend(f"    - {problem}" for problem in report.problems)
    lines.append(f"Fix these, then run the same command again (this driver: {sys.executable}).")
    raise NotReadyError("\n".join(lines))

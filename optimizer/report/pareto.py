"""The Pareto front of a study: its points against the baseline, and the console table.

Place in the data flow: reads the finished study through `optimizer.record` (feasible COMPLETE
trials on the front, the baseline found by its mark). `format_pareto` is what the study prints
at its end: each point's change against the engine defaults, its instance shape and the exact
command that reproduces it (for a real trial two, labelled: the command as it ran there, and
the plain engine command for the target machine). The report's sections use the same
`ParetoReport`.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from optimizer.adoption import best_own_trials
from optimizer.objectives import metric_names
from optimizer.recommend import Recommendation, study_recommendation
from optimizer.record import InstanceShape, TrialRecord, baseline_record, read, read_all
from optimizer.slo_gap import SloGap, slo_gap
from optimizer.spec.models import StudySpec
from optimizer.spec.presets import RecommendRule


@dataclass(frozen=True)
class Point:
    """One trial as the report shows it."""

    number: int
    throughput: float
    latency: float
    serve_command: str
    shape: InstanceShape | None
    launch_command: str = ""
    """What a real trial started, as it ran there ("" for simulated trials)."""

    @staticmethod
    def of(record: TrialRecord) -> Point:
        return Point(
            number=record.number,
            throughput=record.throughput,
            latency=record.latency,
            serve_command=record.serve_command,
            shape=record.shape,
            launch_command=record.launch_command,
        )

    def commands(self) -> list[tuple[str, str]]:
        """(label, command) pairs: a simulated trial has one unlabelled command; a real one
        the command as it ran there and the plain engine command (`COMMANDS_NOTE`)."""
        if not self.launch_command:
            return [("", self.serve_command)]
        return [("as run", self.launch_command), ("engine", self.serve_command)]

    def command_lines(self) -> list[str]:
        return [f"{label}: {command}" if label else command for label, command in self.commands()]

    @property
    def placement(self) -> str:
        """``replicas x GPUs per replica``, as the runner reported it."""
        return str(self.shape) if self.shape is not None else "unknown"

    @property
    def deploy_hint(self) -> str | None:
        """How to deploy a replicated configuration (None for a single instance)."""
        if self.shape is None or self.shape.replicas <= 1:
            return None
        return (
            f"Deploy it as {self.shape.replicas} instances of {self.shape.gpus_per_replica} "
            "GPUs each (CUDA_VISIBLE_DEVICES per instance, distinct --port) behind a load "
            "balancer."
        )


@dataclass(frozen=True)
class ParetoReport:
    points: list[Point]
    baseline: Point | None
    complete: int
    pruned: int
    rejected: int = 0
    infeasible: int = 0
    recommendation: Recommendation | None = None
    slo_gap: SloGap | None = None
    baseline_record: TrialRecord | None = None

    @property
    def pick(self) -> Point | None:
        rec = self.recommendation
        return Point.of(rec.pick) if rec is not None else None


def pareto_points(study: optuna.Study, rule: RecommendRule | None = None) -> ParetoReport:
    """The feasible front (highest throughput first), the baseline, trial counts, and the
    recommendation (`optimizer.recommend`; `rule` instead of the study's)."""
    records = read_all(study)
    front = sorted(
        (Point.of(read(t)) for t in best_own_trials(study)), key=lambda p: -p.throughput
    )
    base = baseline_record(study)
    complete = [r for r in records if r.state == TrialState.COMPLETE]
    pruned = [r for r in records if r.state == TrialState.PRUNED]
    return ParetoReport(
        points=front,
        baseline=Point.of(base) if base is not None else None,
        complete=len(complete),
        pruned=len(pruned),
        rejected=sum(r.is_rejection for r in pruned),
        infeasible=sum(not r.feasible for r in complete),
        recommendation=study_recommendation(study, rule),
        slo_gap=slo_gap(study),
        baseline_record=base,
    )


COMMANDS_NOTE = (
    "Commands of real trials: 'as run' is exactly what the trial started, and works in the "
    "environment it ran in (that Python, the vLLM shim where the `vllm` program does not work, "
    "absolute model path, the trial's port); 'engine' is the plain engine command for the "
    "target machine, with the engine's defaults left out."
)


def has_launch_commands(report: ParetoReport) -> bool:
    points = [*report.points, *([report.baseline] if report.baseline else [])]
    return any(point.launch_command for point in points)


def percent_change(value: float, reference: float) -> str:
    if reference == 0:
        return "n/a"
    return f"{(value - reference) / reference * 100:+.1f}%"


def format_pareto(report: ParetoReport, spec: StudySpec) -> str:
    tput, lat = metric_names(spec.objectives)
    lines = [
        f"Pareto front: {len(report.points)} points of {report.complete} completed trials; "
        f"{report.pruned - report.rejected} crashed and {report.rejected} were rejected before "
        "launch (PRUNED)",
    ]
    if spec.objectives.slos:
        slos = ", ".join(slo.name for slo in spec.objectives.slos)
        lines.append(
            f"SLOs: {slos}; {report.infeasible} completed trials break one and are left out "
            "of the front"
        )
    if has_launch_commands(report):
        lines.append(COMMANDS_NOTE)
    base = report.baseline
    if base is not None:
        lines.append(
            f"Baseline (engine defaults), trial {base.number}: {tput} {base.throughput:,.1f}, "
            f"{lat} {base.latency:,.1f}"
        )
        lines += [f"    {command}" for command in base.command_lines()]
    else:
        lines.append("Baseline (engine defaults): did not complete; no deltas to report")
    header = f"{'trial':>6}  {tput:>32}  {'vs base':>8}  {lat:>18}  {'vs base':>8}  placement"
    lines += ["", header, "-" * len(header)]
    for point in report.points:
        d_tput = percent_change(point.throughput, base.throughput) if base else "n/a"
        d_lat = percent_change(point.latency, base.latency) if base else "n/a"
        marker = "*" if base is not None and point.number == base.number else " "
        picked = report.pick is not None and point.number == report.pick.number
        lines.append(
            f"{point.number:>5}{marker}  {point.throughput:>32,.1f}  {d_tput:>8}  "
            f"{point.latency:>18,.1f}  {d_lat:>8}  {point.placement}"
            + ("  <- recommended" if picked else "")
        )
        lines += [f"        {command}" for command in point.command_lines()]
    return "\n".join(lines + headline(report, spec))


def headline(report: ParetoReport, spec: StudySpec) -> list[str]:
    """The closing lines: the recommended configuration against the baseline, and why."""
    rec, pick, base = report.recommendation, report.pick, report.baseline
    if rec is None or pick is None:
        gap = report.slo_gap
        return ["", *gap.lines()] if gap is not None else []
    tput, lat = metric_names(spec.objectives)
    versus = ""
    if base is not None:
        versus = (
            f": {percent_change(pick.throughput, base.throughput)} throughput and "
            f"{percent_change(pick.latency, base.latency)} latency vs the engine defaults"
        )
    lines = ["", f"Recommended: trial {pick.number} (rule: {RULE_NAMES[rec.rule]}){versus}."]
    lines += textwrap.wrap(f"Why: {rec.why(tput, lat)}", 99, subsequent_indent="    ")
    if all(point.number != pick.number for point in report.points):
        lines += [f"    {command}" for command in pick.command_lines()]
    if pick.deploy_hint is not None:
        lines.append(pick.deploy_hint)
    return lines


RULE_NAMES = {
    "throughput": "throughput within noise of the best, then the lowest latency",
    "latency": "latency within noise of the lowest, then the highest throughput",
    "balanced": "the most throughput per latency",
}

"""What the user reads at the end of a study: the Pareto front, deltas vs the baseline, commands.

`pareto_points` reads the finished study (feasible COMPLETE trials on the front, the baseline
trial found by its `baseline` user attribute); `format_pareto` renders the console table with
each point's throughput and latency, their change against the engine defaults in percent,
and the exact command that reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from optimizer.spec import StudySpec


@dataclass(frozen=True)
class Point:
    """One trial as the report shows it."""

    number: int
    throughput: float
    latency: float
    serve_command: str
    replicas: int
    gpus_per_replica: int

    @staticmethod
    def from_trial(trial: FrozenTrial) -> Point:
        assert trial.values is not None
        runner = trial.user_attrs.get("runner", {})
        replicas = int(runner.get("replicas", 1))
        gpus_used = int(runner.get("gpus_used", replicas))
        return Point(
            number=trial.number,
            throughput=trial.values[0],
            latency=trial.values[1],
            serve_command=str(trial.user_attrs.get("serve_command", "")),
            replicas=replicas,
            gpus_per_replica=max(1, gpus_used // max(1, replicas)),
        )


@dataclass(frozen=True)
class ParetoReport:
    points: list[Point]
    baseline: Point | None
    complete: int
    pruned: int
    rejected: int = 0
    infeasible: int = 0


def baseline_trial(study: optuna.Study) -> FrozenTrial | None:
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get("baseline"):
            return trial
    return None


def pareto_points(study: optuna.Study) -> ParetoReport:
    trials = study.get_trials(deepcopy=False)
    front = sorted((Point.from_trial(t) for t in study.best_trials), key=lambda p: -p.throughput)
    base = baseline_trial(study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    return ParetoReport(
        points=front,
        baseline=Point.from_trial(base) if base is not None else None,
        complete=len(complete),
        pruned=len(pruned),
        rejected=sum(
            str(t.user_attrs.get("crash_class", "")).startswith("rejected:") for t in pruned
        ),
        infeasible=sum(any(v > 0 for v in t.constraints.values()) for t in complete),
    )


def percent_change(value: float, reference: float) -> str:
    if reference == 0:
        return "n/a"
    return f"{(value - reference) / reference * 100:+.1f}%"


def format_pareto(report: ParetoReport, spec: StudySpec) -> str:
    tput = spec.objectives.throughput.label
    lat = spec.objectives.latency.label
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
    base = report.baseline
    if base is not None:
        lines.append(
            f"Baseline (engine defaults), trial {base.number}: {tput} {base.throughput:,.1f}, "
            f"{lat} {base.latency:,.1f}"
        )
        lines.append(f"    {base.serve_command}")
    else:
        lines.append("Baseline (engine defaults): did not complete; no deltas to report")
    header = f"{'trial':>6}  {tput:>32}  {'vs base':>8}  {lat:>18}  {'vs base':>8}  placement"
    lines += ["", header, "-" * len(header)]
    for point in report.points:
        d_tput = percent_change(point.throughput, base.throughput) if base else "n/a"
        d_lat = percent_change(point.latency, base.latency) if base else "n/a"
        placement = f"{point.replicas} x {point.gpus_per_replica} GPUs"
        marker = "*" if base is not None and point.number == base.number else " "
        lines.append(
            f"{point.number:>5}{marker}  {point.throughput:>32,.1f}  {d_tput:>8}  "
            f"{point.latency:>18,.1f}  {d_lat:>8}  {placement}"
        )
        lines.append(f"        {point.serve_command}")
    if report.points and base is not None:
        best = report.points[0]
        d_tput = percent_change(best.throughput, base.throughput)
        d_lat = percent_change(best.latency, base.latency)
        lines += [
            "",
            f"Highest throughput: trial {best.number}, {d_tput} throughput and {d_lat} latency "
            "vs the engine defaults.",
        ]
        if best.replicas > 1:
            lines.append(
                f"Deploy it as {best.replicas} instances of {best.gpus_per_replica} GPUs each "
                "(CUDA_VISIBLE_DEVICES per instance, distinct --port) behind a load balancer."
            )
    return "\n".join(lines)

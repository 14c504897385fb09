"""The report's recommendation sections: the pick and why, or why there is none; workload
warnings; each workload's numbers; and the goodput curves.

Place in the data flow: `optimizer.report.build` puts these after the summary; the same text
becomes optuna-dashboard's study note (`write_study_note`, at the end of a study, after
validation, and when the dashboard starts). Everything is read from the stored study: the
recommendation (`optimizer.recommend`), the empty-front explanation (`optimizer.slo_gap`), the
warnings (`optimizer.degenerate`) and the trials' workload runs (`optimizer.workload_runs`).
"""

from __future__ import annotations

import math

import optuna

from optimizer.degenerate import stored_warnings
from optimizer.record import TrialRecord
from optimizer.report.document import Block, Code, Heading, Para, Table, labels, num
from optimizer.report.pareto import RULE_NAMES, ParetoReport, percent_change
from optimizer.report.render import to_markdown
from optimizer.report.sections import numbers_blocks
from optimizer.workload_runs import StoredRun


def recommendation_blocks(study: optuna.Study, report: ParetoReport) -> list[Block]:
    """The pick and why (or why none), the warnings, each workload, the goodput curves."""
    blocks = pick_blocks(study, report)
    rec = report.recommendation
    if rec is not None:
        tput, lat = labels(study)
        blocks += workload_blocks(rec.pick, report, tput, lat)
        blocks += curve_blocks(rec.pick, report, tput, lat)
    return blocks


def pick_blocks(study: optuna.Study, report: ParetoReport) -> list[Block]:
    """The pick and why (or why there is none), and the workload warnings."""
    tput, lat = labels(study)
    blocks: list[Block] = [Heading("Recommended configuration")]
    rec, base = report.recommendation, report.baseline
    if rec is not None:
        pick = rec.pick
        change = ""
        if base is not None:
            change = (
                f" ({percent_change(pick.throughput, base.throughput)} and "
                f"{percent_change(pick.latency, base.latency)} vs the engine defaults)"
            )
        blocks.append(
            Para(
                f"**Trial {pick.number}**: {tput} {num(pick.throughput)}, {lat} "
                f"{num(pick.latency)}{change}. Rule: {RULE_NAMES[rec.rule]}."
            )
        )
        blocks.append(Para(rec.why(tput, lat)))
        blocks.append(Code(pick.serve_command))
        if report.pick is not None and report.pick.deploy_hint is not None:
            blocks.append(Para(report.pick.deploy_hint))
    elif report.slo_gap is not None:
        blocks.append(Para(" ".join(report.slo_gap.lines())))
    else:
        blocks.append(Para("No trial completed: nothing to recommend."))
    warnings = stored_warnings(study)
    if warnings:
        blocks.append(Heading("Workload warnings", 3))
        blocks += [Para(f"Warning: {w}.") for w in warnings]
    return blocks


def workload_blocks(pick: TrialRecord, report: ParetoReport, tput: str, lat: str) -> list[Block]:
    """Each workload of a study with several: the recommended trial against the baseline."""
    if len(pick.workload_runs) < 2:
        return []
    base = report.baseline_record
    theirs = {r.name: r for r in base.workload_runs} if base is not None else {}
    rows = []
    for run in pick.workload_runs:
        other = theirs.get(run.name)
        rows.append(
            (
                run.name,
                f"{run.weight:g}",
                num(other.throughput) if other else "n/a",
                num(run.throughput),
                percent_change(run.throughput, other.throughput) if other else "n/a",
                num(other.latency) if other else "n/a",
                num(run.latency),
                percent_change(run.latency, other.latency) if other else "n/a",
            )
        )
    return [
        Heading(f"Per workload: baseline vs recommended (trial {pick.number})", 3),
        Para(
            "The objectives combine these: weighted means, or the worst of each (the space "
            "file's objectives.combine). Every SLO must hold on every workload."
        ),
        Table(
            (
                "workload",
                "weight",
                f"baseline {tput}",
                f"recommended {tput}",
                "change",
                f"baseline {lat}",
                f"recommended {lat}",
                "change",
            ),
            tuple(rows),
            (1, 2, 3, 4, 5, 6, 7),
        ),
    ]


def curve_blocks(pick: TrialRecord, report: ParetoReport, tput: str, lat: str) -> list[Block]:
    """The goodput load curves of the recommended trial and the baseline."""
    base = report.baseline_record
    subjects = [(f"recommended (trial {pick.number})", pick)]
    if base is not None and base.number != pick.number:
        subjects.append((f"baseline (trial {base.number})", base))
    blocks: list[Block] = []
    for label, record in subjects:
        for run in record.workload_runs:
            if run.probes:
                blocks += _curve(label, run, tput, lat)
    if blocks:
        blocks.insert(0, Heading("Goodput: the load searches", 3))
        blocks.insert(
            1,
            Para(
                "Every load the trial's search measured, lowest first; the knee is the highest "
                "load at which every SLO held, and its throughput is the goodput."
            ),
        )
    return blocks


def _curve(label: str, run: StoredRun, tput: str, lat: str) -> list[Block]:
    unit = "req/s" if run.knob == "request_rate" else "max concurrency"
    knee = run.knee
    rows = []
    for probe in run.by_load():
        load = "unbounded" if math.isinf(probe.load) else num(probe.load, 2)
        mark = " (knee)" if knee is not None and probe is knee else ""
        rows.append(
            (
                load + mark,
                num(probe.throughput, 2),
                num(probe.latency),
                ", ".join(probe.broken) or "all hold",
            )
        )
    measured = (tput.removeprefix("goodput, "), lat.removesuffix(" at goodput"))
    return [
        Para(f"**{label}**, workload {run.name}:"),
        Table((f"load ({unit})", *measured, "SLOs broken"), tuple(rows), (0, 1, 2)),
    ]


def study_note(study: optuna.Study, report: ParetoReport) -> str:
    """optuna-dashboard's study note: what the numbers are (simulated, emulated, measured),
    the recommendation and why (or why there is none)."""
    return to_markdown([*numbers_blocks(study), *pick_blocks(study, report)])


def write_study_note(study: optuna.Study, report: ParetoReport) -> None:
    from optuna_dashboard import save_note

    save_note(study, study_note(study, report))

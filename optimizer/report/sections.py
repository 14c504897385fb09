"""The report's opening sections: what was searched, baseline against best, the Pareto table.

Place in the data flow: `optimizer.report.build` calls these first, with the `ParetoReport` of
`optimizer.report.pareto`; they return document blocks.
"""

from __future__ import annotations

import optuna

from optimizer.provenance import sentences
from optimizer.record import read_all
from optimizer.report.document import Block, Code, Heading, Image, Para, Table, labels, num
from optimizer.report.pareto import (
    COMMANDS_NOTE,
    ParetoReport,
    has_launch_commands,
    percent_change,
)


def numbers_blocks(study: optuna.Study) -> list[Block]:
    """Whether the study's numbers are simulated (with the calibration), emulated or measured:
    one paragraph per kind among its trials (`optimizer.provenance`)."""
    records = read_all(study)
    kinds = [r.runner.numbers for r in records if r.runner and r.runner.numbers]
    blocks: list[Block] = []
    for text in sentences(study, kinds):
        kind, _, rest = text.partition(":")
        blocks.append(Para(f"**{kind}**:{rest}"))
    return blocks


def summary_blocks(study: optuna.Study, report: ParetoReport) -> list[Block]:
    tput, lat = labels(study)
    attrs = study.user_attrs
    blocks: list[Block] = [Heading(f"Serving configuration report: {study.study_name}", 1)]
    facts = [
        f"model **{attrs['model']}**" if "model" in attrs else "",
        f"hardware {attrs['node_group']}" if "node_group" in attrs else "",
        f"workload {attrs['workload']}" if "workload" in attrs else "",
    ]
    blocks.append(Para("; ".join(f for f in facts if f) + "." if any(facts) else ""))
    blocks += numbers_blocks(study)
    blocks.append(
        Para(
            f"Objectives: maximize **{tput}**, minimize **{lat}**. {report.complete} trials "
            f"completed, {report.pruned - report.rejected} crashed on the runner, "
            f"{report.rejected} were rejected by pre-flight checks before launch; "
            f"{len(report.points)} points on the Pareto front."
        )
    )
    base = report.baseline
    blocks.append(Heading("Baseline vs best, per objective"))
    if base is None or not report.points:
        blocks.append(Para("The baseline (engine defaults) did not complete: no deltas."))
        return blocks
    best_tput = max(report.points, key=lambda p: p.throughput)
    best_lat = min(report.points, key=lambda p: p.latency)
    rows = []
    for label, b, best, value in (
        (tput, base.throughput, best_tput, best_tput.throughput),
        (lat, base.latency, best_lat, best_lat.latency),
    ):
        other = best.latency if best is best_tput else best.throughput
        other_base = base.latency if best is best_tput else base.throughput
        rows.append(
            (
                label,
                num(b),
                num(value),
                percent_change(value, b),
                f"trial {best.number}",
                f"{percent_change(other, other_base)} on the other objective",
            )
        )
    blocks.append(
        Table(
            ("objective", "baseline", "best", "change", "best is", "trade-off"),
            tuple(rows),
            (1, 2, 3),
        )
    )
    if has_launch_commands(report):
        blocks.append(Para(COMMANDS_NOTE))
    blocks.append(Para(f"Baseline (engine defaults), trial {base.number}:"))
    blocks.append(Code("\n".join(base.command_lines())))
    return blocks


def pareto_blocks(study: optuna.Study, report: ParetoReport, png: str | None) -> list[Block]:
    tput, lat = labels(study)
    base = report.baseline
    blocks: list[Block] = [Heading("Pareto front")]
    if png:
        blocks.append(Image(png, "Pareto front"))
    rows = []
    for p in report.points:
        rows.append(
            (
                str(p.number) + (" (baseline)" if base and p.number == base.number else ""),
                num(p.throughput),
                percent_change(p.throughput, base.throughput) if base else "n/a",
                num(p.latency),
                percent_change(p.latency, base.latency) if base else "n/a",
                p.placement,
                "; ".join(
                    f"{label}: `{command}`" if label else f"`{command}`"
                    for label, command in p.commands()
                ),
            )
        )
    commands = "commands (as run; engine)" if has_launch_commands(report) else "serve command"
    blocks.append(
        Table(
            ("trial", tput, "vs base", lat, "vs base", "placement", commands),
            tuple(rows),
            (1, 2, 3, 4),
        )
    )
    return blocks

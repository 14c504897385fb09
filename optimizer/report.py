"""What the user reads at the end of a study: the console Pareto table, and the report files.

Place in the data flow: last stage, after `optimizer.study` (and optionally
`optimizer.validate`) filled the storage. `pareto_points` reads the finished study (feasible
COMPLETE trials on the front, the baseline trial found by its `baseline` user attribute) and
`format_pareto` renders the console table with each point's change against the engine defaults
and the exact command that reproduces it. `write_report` renders ``<study dir>/report.md``,
``report.html``, ``pareto.png`` and ``hypervolume.png`` from the same study: baseline vs best
per objective, the Pareto table with serve commands, setting importances per objective
(optuna.importance), crashes by class (runner crashes apart from pre-flight rejections),
hypervolume by trial, and the validation tables when ``<name>.validation`` exists. It is
written at the end of every study and by ``python -m optimizer.report STUDY``.
"""

from __future__ import annotations

import argparse
import html
import math
import re
import statistics
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from optimizer.artifacts import storage_url, study_dir_of
from optimizer.spec.models import StudySpec
from optimizer.validate import (
    KINDS,
    Measurement,
    add_study_arguments,
    dominated,
    interval,
    load_measurements,
    locate,
    open_study,
)
from runners.errors import ServingOptimizerError


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


# --- the report files ----------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align_right: tuple[int, ...] = ()


@dataclass(frozen=True)
class Image:
    path: str
    alt: str


Block = Heading | Para | Code | Table | Image


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    pareto_png: Path | None
    hypervolume_png: Path | None


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            out += [block.text, ""]
        elif isinstance(block, Code):
            out += ["```", block.text, "```", ""]
        elif isinstance(block, Table):
            aligns = [
                "---:" if i in block.align_right else "---" for i in range(len(block.header))
            ]
            out.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            out.append("|" + "|".join(aligns) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        else:
            out += [f"![{block.alt}]({block.path})", ""]
    return "\n".join(out).rstrip() + "\n"


_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")


def _inline_html(text: str) -> str:
    parts: list[str] = []
    last = 0
    for match in _INLINE.finditer(text):
        parts.append(html.escape(text[last : match.start()]))
        if match.group(1) is not None:
            parts.append(f"<code>{html.escape(match.group(1))}</code>")
        else:
            parts.append(f"<strong>{html.escape(match.group(2))}</strong>")
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid
#ccc;padding:4px 8px;vertical-align:top}th{background:#f3f3f3}td.r{text-align:right;
font-variant-numeric:tabular-nums}code,pre{background:#f6f8fa;font-size:13px}pre{padding:8px;
overflow-x:auto}img{max-width:100%}"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{_inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Code):
            out.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block.header)
            rows = []
            for row in block.rows:
                cells = "".join(
                    f'<td class="r">{_inline_html(c)}</td>'
                    if i in block.align_right
                    else f"<td>{_inline_html(c)}</td>"
                    for i, c in enumerate(row)
                )
                rows.append(f"<tr>{cells}</tr>")
            body = "".join(rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            src, alt = html.escape(block.path), html.escape(block.alt)
            out.append(f'<p><img src="{src}" alt="{alt}"></p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _num(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _labels(study: optuna.Study) -> tuple[str, str]:
    names = study.metric_names or ["throughput", "latency"]
    return names[0], names[1]


def _feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def _short(command: str, width: int = 140) -> str:
    return command if len(command) <= width else command[: width - 1] + "…"


def summary_blocks(study: optuna.Study, report: ParetoReport) -> list[Block]:
    tput, lat = _labels(study)
    attrs = study.user_attrs
    blocks: list[Block] = [Heading(f"Serving configuration report: {study.study_name}", 1)]
    facts = [
        f"model **{attrs['model']}**" if "model" in attrs else "",
        f"hardware {attrs['node_group']}" if "node_group" in attrs else "",
        f"workload {attrs['workload']}" if "workload" in attrs else "",
    ]
    blocks.append(Para("; ".join(f for f in facts if f) + "." if any(facts) else ""))
    runner_names = {
        str(t.user_attrs.get("runner", {}).get("name", ""))
        for t in study.get_trials(deepcopy=False)
        if isinstance(t.user_attrs.get("runner"), dict)
    }
    if "sim" in runner_names:
        blocks.append(
            Para(
                "**Simulated**: trials ran on the embedded simulated engine; numbers are model "
                "estimates (calibrated only at the baseline so far), not measurements."
            )
        )
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
                _num(b),
                _num(value),
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
    blocks.append(Para(f"Baseline (engine defaults), trial {base.number}:"))
    blocks.append(Code(base.serve_command))
    blocks.append(Para(f"Highest throughput, trial {best_tput.number}:"))
    blocks.append(Code(best_tput.serve_command))
    if best_tput.replicas > 1:
        blocks.append(
            Para(
                f"Deploy it as {best_tput.replicas} instances of {best_tput.gpus_per_replica} "
                "GPUs each (CUDA_VISIBLE_DEVICES per instance, distinct --port) behind a load "
                "balancer."
            )
        )
    return blocks


def pareto_blocks(study: optuna.Study, report: ParetoReport, png: str | None) -> list[Block]:
    tput, lat = _labels(study)
    base = report.baseline
    blocks: list[Block] = [Heading("Pareto front")]
    if png:
        blocks.append(Image(png, "Pareto front"))
    rows = []
    for p in report.points:
        rows.append(
            (
                str(p.number) + (" (baseline)" if base and p.number == base.number else ""),
                _num(p.throughput),
                percent_change(p.throughput, base.throughput) if base else "n/a",
                _num(p.latency),
                percent_change(p.latency, base.latency) if base else "n/a",
                f"{p.replicas} x {p.gpus_per_replica} GPUs",
                f"`{p.serve_command}`",
            )
        )
    blocks.append(
        Table(
            ("trial", tput, "vs base", lat, "vs base", "placement", "serve command"),
            tuple(rows),
            (1, 2, 3, 4),
        )
    )
    return blocks


def importance_blocks(study: optuna.Study) -> list[Block]:
    tput, lat = _labels(study)
    complete = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _feasible(t)
    ]
    blocks: list[Block] = [Heading("Which settings matter (importance per objective)")]
    if len(complete) < 4:
        blocks.append(Para("Too few completed trials to estimate importances."))
        return blocks
    tables: list[dict[str, float]] = []
    for index in (0, 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(
                    study,
                    evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=lambda t, i=index: t.values[i],  # type: ignore[misc]
                )
        except (ValueError, RuntimeError) as exc:
            blocks.append(Para(f"Importances could not be computed: {exc}"))
            return blocks
        tables.append({str(k): float(v) for k, v in found.items()})
    names = sorted(tables[0], key=lambda k: -(tables[0][k] + tables[1].get(k, 0.0)))
    shown = [n for n in names if tables[0][n] + tables[1].get(n, 0.0) >= 0.01][:12]
    rows = tuple((f"`{n}`", f"{tables[0][n]:.2f}", f"{tables[1].get(n, 0.0):.2f}") for n in shown)
    blocks.append(
        Para(
            f"PED-ANOVA importances (optuna.importance) over {len(complete)} feasible completed "
            "trials: how much each setting separates the best trials of each objective from "
            "the rest, normalized to sum to 1 (settings of one engine only vary in its "
            "trials). Settings below 0.01 on both objectives are left out."
        )
    )
    blocks.append(Table(("setting", tput, lat), rows, (1, 2)))
    return blocks


def crash_blocks(study: optuna.Study) -> list[Block]:
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    runner: dict[str, list[FrozenTrial]] = {}
    rejected: dict[str, list[FrozenTrial]] = {}
    for t in pruned:
        cls = str(t.user_attrs.get("crash_class", "unknown"))
        (rejected if cls.startswith("rejected:") else runner).setdefault(cls, []).append(t)
    blocks: list[Block] = [Heading("Crashes by class")]

    def table(groups: dict[str, list[FrozenTrial]], cost: bool) -> Table:
        rows = []
        for cls, trials in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            seconds = sum(
                float(t.user_attrs.get("runner", {}).get("trial_seconds", 0.0)) for t in trials
            )
            example = str(trials[0].user_attrs.get("crash_message", "")).splitlines()
            row = [
                f"`{cls}`",
                str(len(trials)),
                ", ".join(str(t.number) for t in trials[:8]) + (" …" if len(trials) > 8 else ""),
            ]
            if cost:
                row.append(_num(seconds / 60.0))
            row.append(_short(example[0] if example else "", 160))
            rows.append(tuple(row))
        header: tuple[str, ...] = ("class", "trials", "trial numbers")
        header += ("GPU minutes lost (est.)",) if cost else ()
        return Table((*header, "example message"), tuple(rows), (1, 3) if cost else (1,))

    blocks.append(Heading("Crashed on the runner (engine started, or tried to)", 3))
    blocks.append(table(runner, True) if runner else Para("None."))
    blocks.append(Heading("Rejected by pre-flight checks (nothing launched)", 3))
    blocks.append(table(rejected, False) if rejected else Para("None."))
    return blocks


def hypervolume_2d(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by (throughput up, latency down) points and bounded by `ref`."""
    inside = sorted(
        {(t, lat) for t, lat in points if t > ref[0] and lat < ref[1]}, key=lambda p: -p[0]
    )
    area = 0.0
    best_lat = ref[1]
    for t, lat in inside:  # descending throughput: each point adds a slab left of it
        if lat < best_lat:
            area += (t - ref[0]) * (best_lat - lat)
            best_lat = lat
    return area


def hypervolume_history(
    study: optuna.Study,
) -> tuple[list[tuple[int, float]], tuple[float, float]]:
    """(trial number, hypervolume of the feasible front so far) for every finished trial."""
    trials = sorted(
        (t for t in study.get_trials(deepcopy=False) if t.state.is_finished()),
        key=lambda t: t.number,
    )
    feasible = [t for t in trials if t.state == TrialState.COMPLETE and t.values and _feasible(t)]
    if not feasible:
        return [], (0.0, 0.0)
    ref = (
        0.9 * min(t.values[0] for t in feasible),
        1.1 * max(t.values[1] for t in feasible),
    )
    seen: list[tuple[float, float]] = []
    history = []
    for t in trials:
        if t.state == TrialState.COMPLETE and t.values and _feasible(t):
            seen.append((t.values[0], t.values[1]))
        history.append((t.number, hypervolume_2d(seen, ref)))
    return history, ref


def hypervolume_blocks(study: optuna.Study, png: str | None) -> list[Block]:
    history, ref = hypervolume_history(study)
    blocks: list[Block] = [Heading("Hypervolume by trial")]
    if not history:
        blocks.append(Para("No feasible completed trial yet."))
        return blocks
    tput, lat = _labels(study)
    final = history[-1][1] or 1.0
    blocks.append(
        Para(
            f"Area dominated by the feasible front, with reference point {tput} "
            f"{_num(ref[0])} and {lat} {_num(ref[1])} (90% of the worst throughput, 110% of "
            "the worst latency seen), as a share of the final value. Rows: trials that moved it."
        )
    )
    if png:
        blocks.append(Image(png, "Hypervolume by trial"))
    rows = []
    previous = -1.0
    for number, hv in history:
        if hv > previous:
            rows.append((str(number), f"{hv / final:.1%}"))
            previous = hv
    blocks.append(Table(("trial", "hypervolume (share of final)"), tuple(rows), (1,)))
    return blocks


# --- validation tables ---------------------------------------------------------------------


def _ci(values: Sequence[float], digits: int = 1) -> str:
    iv = interval(values)
    if iv.n == 0:
        return "n/a"
    if iv.n == 1:
        return _num(iv.mean, digits)
    return f"{_num(iv.mean, digits)} ± {_num(iv.half_width, digits)}"


def _pair_cell(m: Measurement | None, which: int) -> str:
    if m is None:
        return "n/a"
    if not m.ok:
        return f"crashed `{m.crash_class}`"
    value = m.throughput if which == 0 else m.latency
    assert value is not None
    failed = f" ({m.failed} failed)" if m.failed and which == 0 else ""
    return _num(value) + failed


def _pair_change(base: Measurement | None, opt: Measurement | None, which: int) -> str:
    if base is None or opt is None or not base.ok or not opt.ok:
        return "n/a"
    b = base.throughput if which == 0 else base.latency
    o = opt.throughput if which == 0 else opt.latency
    assert b is not None and o is not None
    return percent_change(o, b)


def _pair_table(
    first: str,
    ms: Sequence[Measurement],
    labels: Sequence[str],
    best_subject: str,
    tput: str,
    lat: str,
) -> Table:
    """Baseline against the optimized configuration, one row per label, both objectives."""
    header = [first]
    for objective in (tput, lat):
        header += [f"baseline {objective}", f"optimized {objective}", "change"]
    return Table(tuple(header), _pair_rows(ms, labels, best_subject), (1, 2, 3, 4, 5, 6))


def _pair_rows(
    ms: Sequence[Measurement], labels: Sequence[str], best_subject: str
) -> tuple[tuple[str, ...], ...]:
    rows = []
    for label in labels:
        base = next((m for m in ms if m.label == label and m.subject == "baseline"), None)
        opt = next((m for m in ms if m.label == label and m.subject == best_subject), None)
        rows.append(
            (
                label,
                _pair_cell(base, 0),
                _pair_cell(opt, 0),
                _pair_change(base, opt, 0),
                _pair_cell(base, 1),
                _pair_cell(opt, 1),
                _pair_change(base, opt, 1),
            )
        )
    return tuple(rows)


def validation_blocks(
    study: optuna.Study, measurements: Sequence[Measurement], info: Mapping[str, object]
) -> list[Block]:
    tput, lat = _labels(study)
    blocks: list[Block] = [Heading("Validation")]
    if not measurements:
        blocks.append(
            Para(
                "Not validated yet: run `python -m optimizer.validate "
                f"{study.study_name}` to re-measure the front (repeats), ablate the best "
                "configuration, sweep concurrency and try other workloads."
            )
        )
        return blocks
    blocks.append(
        Para(
            f"Runner `{info.get('runner', '?')}`, {info.get('repeats', '?')} repeats, noise "
            f"{info.get('noise', '?')}; repeats use {info.get('repeat_seeds', 'new seeds')}. "
            f"Stored in study `{study.study_name}.validation`."
        )
    )
    by_kind = {kind: [m for m in measurements if m.kind == kind] for kind in KINDS}
    search = {
        t.number: t.values for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    }
    # repeats
    repeats = by_kind["repeat"]
    if repeats:
        subjects = list(dict.fromkeys(m.subject for m in repeats))
        means: dict[str, tuple[float, float]] = {}
        for s in subjects:
            ok = [m for m in repeats if m.subject == s and m.ok]
            if ok:
                means[s] = (
                    statistics.fmean(m.throughput or 0.0 for m in ok),
                    statistics.fmean(m.latency or 0.0 for m in ok),
                )
        rows = []
        for s in subjects:
            runs = [m for m in repeats if m.subject == s]
            ok = [m for m in runs if m.ok]
            trial = runs[0].trial
            found = search.get(trial) if trial is not None else None
            tputs = [m.throughput or 0.0 for m in ok]
            lats = [m.latency or 0.0 for m in ok]
            verdict = []
            if s in means and s != "baseline":
                others = [v for k, v in means.items() if k != s]
                verdict.append("off the front" if dominated(means[s], others) else "on the front")
            if found is not None and len(ok) > 1:
                outside = [
                    name
                    for name, values, v in ((tput, tputs, found[0]), (lat, lats, found[1]))
                    if not interval(values).contains(v)
                ]
                if outside:
                    verdict.append("search value outside the 95% interval")
            if len(ok) < len(runs):
                verdict.append(f"{len(runs) - len(ok)} of {len(runs)} runs crashed")
            rows.append(
                (
                    s,
                    f"{_num(found[0])} / {_num(found[1])}" if found else "n/a",
                    str(len(ok)),
                    _ci(tputs),
                    _ci(lats),
                    "; ".join(verdict) or "-",
                )
            )
        blocks.append(Heading("Repeats: does the front hold up?", 3))
        blocks.append(
            Para(
                "Each configuration re-measured; mean ± 95% interval (Student t). A point is "
                "off the front when another re-measured configuration beats it on both means."
            )
        )
        blocks.append(
            Table(
                ("config", "search value", "runs", tput, lat, "verdict"),
                tuple(rows),
                (2, 3, 4),
            )
        )
    # ablation
    ablation = by_kind["ablation"]
    if ablation:
        blocks += ablation_blocks(ablation, tput, lat)
    sweep = by_kind["sweep"]
    if sweep:
        best = next((m.subject for m in sweep if m.subject != "baseline"), "")
        levels = sorted({m.label for m in sweep}, key=int)
        blocks.append(Heading(f"Concurrency sweep: baseline vs optimized ({best})", 3))
        blocks.append(_pair_table("max concurrency", sweep, levels, best, tput, lat))
    loads = by_kind["workload"]
    if loads:
        best = next((m.subject for m in loads if m.subject != "baseline"), "")
        names = list(dict.fromkeys(m.label for m in loads))
        blocks.append(Heading(f"Other workloads: baseline vs optimized ({best})", 3))
        blocks.append(
            Para(
                "The first row is the search workload. A configuration tuned for it can lose "
                "elsewhere (for example a short max-model-len fails long prompts)."
            )
        )
        blocks.append(_pair_table("workload", loads, names, best, tput, lat))
    return blocks


@dataclass(frozen=True)
class AblationFinding:
    """The setting whose reversion costs the most of each objective."""

    throughput_setting: str
    throughput_change: str
    latency_setting: str
    latency_change: str


def ablation_finding(ablation: Sequence[Measurement]) -> AblationFinding | None:
    best = next((m for m in ablation if m.label == "(best as found)" and m.ok), None)
    steps = [m for m in ablation if not m.label.startswith("(") and m.ok]
    if best is None or best.throughput is None or best.latency is None or not steps:
        return None
    worst_tput = min(steps, key=lambda m: m.throughput or 0.0)
    worst_lat = max(steps, key=lambda m: m.latency or 0.0)
    assert worst_tput.throughput is not None and worst_lat.latency is not None
    return AblationFinding(
        worst_tput.label,
        percent_change(worst_tput.throughput, best.throughput),
        worst_lat.label,
        percent_change(worst_lat.latency, best.latency),
    )


def ablation_blocks(ablation: Sequence[Measurement], tput: str, lat: str) -> list[Block]:
    best = next((m for m in ablation if m.label == "(best as found)"), None)
    subject = best.subject if best else "best"
    blocks: list[Block] = [Heading(f"Ablation of the best configuration ({subject})", 3)]
    blocks.append(
        Para(
            "Each setting that differs from the baseline is reverted alone (settings that "
            "depend on it follow, as in the search) and the configuration re-measured; the "
            "change is against the best as found. Crashed means the setting cannot be reverted "
            "alone."
        )
    )
    rows = []
    for m in ablation:
        if m.ok and best is not None and best.ok:
            assert m.throughput is not None and m.latency is not None
            assert best.throughput is not None and best.latency is not None
            d_t = percent_change(m.throughput, best.throughput)
            d_l = percent_change(m.latency, best.latency)
            rows.append((m.label, _num(m.throughput), d_t, _num(m.latency), d_l))
        else:
            rows.append((m.label, f"crashed `{m.crash_class}`", "", "", ""))
    blocks.append(Table(("reverted", tput, "vs best", lat, "vs best"), tuple(rows), (1, 2, 3, 4)))
    inseparable = [m.label for m in ablation if not m.ok and not m.label.startswith("(")]
    if inseparable:
        blocks.append(
            Para(
                "Cannot be reverted alone (the configuration crashes without them, so their "
                "contribution is part of the whole change vs the baseline): "
                + ", ".join(f"**{label}**" for label in inseparable)
                + "."
            )
        )
    finding = ablation_finding(ablation)
    if finding is not None:
        blocks.append(
            Para(
                f"Of the separable settings, contributed most to throughput: "
                f"**{finding.throughput_setting}** (reverting "
                f"it alone: {finding.throughput_change} throughput). Contributed most to "
                f"latency: **{finding.latency_setting}** (reverting it alone: "
                f"{finding.latency_change} latency)."
            )
        )
    return blocks


# --- plots ---------------------------------------------------------------------------------


def plot_pareto(
    study: optuna.Study,
    report: ParetoReport,
    path: Path,
    measurements: Sequence[Measurement] = (),
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    tput, lat = _labels(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = {p.number for p in report.points}
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    others = [t for t in complete if t.number not in front and _feasible(t) and t.values]
    infeasible = [t for t in complete if not _feasible(t) and t.values]
    ax.scatter(
        [t.values[1] for t in others], [t.values[0] for t in others],
        c="#9aa5b1", s=22, label="completed trials",
    )  # fmt: skip
    if infeasible:
        ax.scatter(
            [t.values[1] for t in infeasible], [t.values[0] for t in infeasible],
            c="#d9a441", marker="x", s=28, label="breaks an SLO (infeasible)",
        )  # fmt: skip
    pts = sorted(report.points, key=lambda p: p.latency)
    ax.plot(
        [p.latency for p in pts], [p.throughput for p in pts],
        "-o", c="#c0392b", ms=6, label="Pareto front", drawstyle="steps-post",
    )  # fmt: skip
    for p in pts:
        ax.annotate(str(p.number), (p.latency, p.throughput), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)  # fmt: skip
    if report.baseline is not None:
        b = report.baseline
        ax.scatter([b.latency], [b.throughput], marker="*", s=220, c="#2c7be5", zorder=5,
                   label=f"baseline (trial {b.number})")  # fmt: skip
    repeats = [m for m in measurements if m.kind == "repeat" and m.ok]
    subjects = list(dict.fromkeys(m.subject for m in repeats))
    for index, s in enumerate(subjects):
        runs = [m for m in repeats if m.subject == s]
        ti = interval([m.throughput or 0.0 for m in runs])
        li = interval([m.latency or 0.0 for m in runs])
        ax.errorbar(
            li.mean, ti.mean,
            xerr=0 if math.isinf(li.half_width) else li.half_width,
            yerr=0 if math.isinf(ti.half_width) else ti.half_width,
            fmt="s", c="#27ae60", ms=5, capsize=3,
            label="re-measured mean ± 95%" if index == 0 else None,
        )  # fmt: skip
    ax.set_xlabel(f"{lat} (lower is better)")
    ax.set_ylabel(f"{tput} (higher is better)")
    ax.set_title(f"{study.study_name}: Pareto front of {len(complete)} completed trials")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_hypervolume(study: optuna.Study, path: Path) -> Path | None:
    history, _ = hypervolume_history(study)
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    final = history[-1][1] or 1.0
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
    ax.step([n for n, _ in history], [hv / final for _, hv in history], where="post", c="#2c7be5")
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (share of final)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def build_report(
    study: optuna.Study,
    measurements: Sequence[Measurement] = (),
    info: Mapping[str, object] | None = None,
    pareto_png: str | None = None,
    hypervolume_png: str | None = None,
) -> list[Block]:
    report = pareto_points(study)
    blocks = summary_blocks(study, report)
    blocks += pareto_blocks(study, report, pareto_png)
    blocks += validation_blocks(study, measurements, info or {})
    blocks += importance_blocks(study)
    blocks += crash_blocks(study)
    blocks += hypervolume_blocks(study, hypervolume_png)
    blocks.append(
        Para(
            f"Browse every trial, its note and artifacts: `python -m optimizer.dashboard "
            f"{study.study_name}`"
        )
    )
    return blocks


def write_report(study: optuna.Study, directory: Path | None = None) -> ReportFiles:
    """Write report.md, report.html, pareto.png and hypervolume.png of `study`."""
    directory = directory or study_dir_of(study)
    directory.mkdir(parents=True, exist_ok=True)
    url = storage_url(study._storage)
    measurements, info = load_measurements(url, study.study_name) if url else ([], {})
    report = pareto_points(study)
    pareto = plot_pareto(study, report, directory / "pareto.png", measurements)
    hv = plot_hypervolume(study, directory / "hypervolume.png")
    blocks = build_report(
        study, measurements, info, pareto.name, hv.name if hv is not None else None
    )
    md = directory / "report.md"
    md.write_text(to_markdown(blocks))
    page = directory / "report.html"
    page.write_text(to_html(blocks, f"{study.study_name}: serving configuration report"))
    return ReportFiles(md, page, pareto, hv)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m optimizer.report",
        description="Write report.md, report.html and pareto.png of a finished study.",
        epilog="Example: python -m optimizer.report qwen3-moe",
    )
    add_study_arguments(parser)
    parser.add_argument("--out", type=Path, help="directory (default: studies/<name>/)")
    ns = parser.parse_args(argv)
    try:
        ref = locate(ns.study, ns.storage, ns.study_name)
        study = open_study(ref)
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = write_report(study, ns.out or ref.directory)
    print(f"Report: {files.markdown}\n        {files.html}\n        {files.pareto_png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

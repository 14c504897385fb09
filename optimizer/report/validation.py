"""The validation tables: repeats of the front, ablation of the best, concurrency sweep and
other workloads, each as "baseline | optimized | change".

Place in the data flow: one section of the report, from the measurements `optimizer.validate`
stored (`optimizer.measurements`); "Not validated yet" until then.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from optimizer.measurements import KINDS, Measurement, dominated, interval
from optimizer.record import read_all
from optimizer.report.document import Block, Heading, Para, Table, labels, num
from optimizer.report.pareto import percent_change


def _ci(values: Sequence[float], digits: int = 1) -> str:
    iv = interval(values)
    if iv.n == 0:
        return "n/a"
    if iv.n == 1:
        return num(iv.mean, digits)
    return f"{num(iv.mean, digits)} ± {num(iv.half_width, digits)}"


def _pair_cell(m: Measurement | None, which: int) -> str:
    if m is None:
        return "n/a"
    if not m.ok:
        return f"crashed `{m.crash_class}`"
    value = m.throughput if which == 0 else m.latency
    assert value is not None
    failed = f" ({m.failed} failed)" if m.failed and which == 0 else ""
    return num(value) + failed


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
    tput, lat = labels(study)
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
    search = {r.number: r.values for r in read_all(study, (TrialState.COMPLETE,))}
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
                    f"{num(found[0])} / {num(found[1])}" if found else "n/a",
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
            rows.append((m.label, num(m.throughput), d_t, num(m.latency), d_l))
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

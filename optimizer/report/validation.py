"""The validation tables: repeats of the front, ablation of the recommended configuration,
concurrency sweep, goodput's rate sweep around the knee, and the workloads, each as "baseline |
optimized | change".

Place in the data flow: one section of the report, from the measurements `optimizer.validate`
stored (`optimizer.measurements`); "Not validated yet" until then. Changes within the noise of
`optimizer.noise` (measured by the repeats themselves when there are some) read "no measurable
effect" in the ablation rather than a percentage.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from optimizer.copy_paste import study_command
from optimizer.measurements import KINDS, RATE_LEVELS, Measurement, dominated, interval
from optimizer.noise import ESTIMATE, NoiseEstimate, noise_of
from optimizer.record import read_all, study_url
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
                "Not validated yet: run "
                f"`{study_command('validate', study.study_name, study_url(study))}` to "
                "re-measure the front (repeats), ablate the best "
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
    if info.get("numbers"):
        kind, _, rest = str(info["numbers"]).partition(":")
        blocks.append(Para(f"**{kind}**:{rest}"))
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
    noise = noise_of(measurements, _noise_setting(study))
    if ablation:
        blocks += ablation_blocks(ablation, tput, lat, noise)
    sweep = by_kind["sweep"]
    if sweep:
        best = next((m.subject for m in sweep if m.subject != "baseline"), "")
        levels = sorted({m.label for m in sweep}, key=int)
        blocks.append(Heading(f"Concurrency sweep: baseline vs optimized ({best})", 3))
        blocks.append(_pair_table("max concurrency", sweep, levels, best, *_measured(tput, lat)))
    rates = by_kind["rate"]
    if rates:
        blocks += rate_sweep_blocks(rates, *_measured(tput, lat))
    loads = by_kind["workload"]
    if loads:
        best = next((m.subject for m in loads if m.subject != "baseline"), "")
        names = list(dict.fromkeys(m.label for m in loads))
        blocks.append(Heading(f"Per workload: baseline vs optimized ({best})", 3))
        blocks.append(
            Para(
                "The study's workloads first, then the space file's validation workloads, each "
                "measured alone (with goodput, by its own load search). A configuration tuned "
                "for the study's workloads can lose elsewhere (for example a short "
                "max-model-len fails long prompts)."
            )
        )
        blocks.append(_pair_table("workload", loads, names, best, tput, lat))
    return blocks


def _measured(tput: str, lat: str) -> tuple[str, str]:
    """The objectives' names for a run at one load (not goodput's load search)."""
    return tput.removeprefix("goodput, "), lat.removesuffix(" at goodput")


def _noise_setting(study: optuna.Study) -> float | str:
    stored = study.user_attrs.get("recommendation")
    setting = stored.get("noise", "auto") if isinstance(stored, dict) else "auto"
    return setting if isinstance(setting, float | int | str) else "auto"


@dataclass(frozen=True)
class AblationFinding:
    """The setting whose reversion costs the most of each objective ("" when no reversion
    has an effect beyond noise on that objective)."""

    throughput_setting: str
    throughput_change: str
    latency_setting: str
    latency_change: str


def measurable(m: Measurement, best: Measurement, noise: NoiseEstimate) -> tuple[bool, bool]:
    """Does reverting this setting change throughput / latency beyond noise?"""
    assert m.throughput is not None and m.latency is not None
    assert best.throughput is not None and best.latency is not None
    return (
        abs(_log(m.throughput) - _log(best.throughput)) > noise.band("throughput"),
        abs(_log(m.latency) - _log(best.latency)) > noise.band("latency"),
    )


def _log(value: float) -> float:
    return math.log(max(value, 1e-12))


def ablation_finding(
    ablation: Sequence[Measurement], noise: NoiseEstimate = ESTIMATE
) -> AblationFinding | None:
    best = next((m for m in ablation if m.label == "(best as found)" and m.ok), None)
    steps = [m for m in ablation if not m.label.startswith("(") and m.ok]
    if best is None or best.throughput is None or best.latency is None or not steps:
        return None
    tput_steps = [m for m in steps if m.throughput and measurable(m, best, noise)[0]]
    lat_steps = [m for m in steps if m.latency is not None and measurable(m, best, noise)[1]]
    worst_tput = min(tput_steps, key=lambda m: m.throughput or 0.0, default=None)
    worst_lat = max(lat_steps, key=lambda m: m.latency or 0.0, default=None)
    return AblationFinding(
        worst_tput.label if worst_tput else "",
        percent_change(worst_tput.throughput or 0.0, best.throughput) if worst_tput else "",
        worst_lat.label if worst_lat else "",
        percent_change(worst_lat.latency or 0.0, best.latency) if worst_lat else "",
    )


NO_EFFECT = "no measurable effect"


def ablation_blocks(
    ablation: Sequence[Measurement], tput: str, lat: str, noise: NoiseEstimate = ESTIMATE
) -> list[Block]:
    best = next((m for m in ablation if m.label == "(best as found)"), None)
    subject = best.subject if best else "best"
    blocks: list[Block] = [Heading(f"Ablation of the recommended configuration ({subject})", 3)]
    blocks.append(
        Para(
            "Each setting that differs from the baseline (and from the engine's default) is "
            "reverted alone (settings that depend on it follow, as in the search) and the "
            "configuration re-measured; the change is against the recommended configuration as "
            'found. A change within noise reads "no measurable effect". Crashed means the '
            f"setting cannot be reverted alone. Noise: {noise.describe()}."
        )
    )
    rows = []
    for m in ablation:
        if m.ok and best is not None and best.ok:
            assert m.throughput is not None and m.latency is not None
            assert best.throughput is not None and best.latency is not None
            seen_t, seen_l = measurable(m, best, noise)
            step = not m.label.startswith("(")
            d_t = percent_change(m.throughput, best.throughput)
            d_l = percent_change(m.latency, best.latency)
            if step and not seen_t:
                d_t = NO_EFFECT
            if step and not seen_l:
                d_l = NO_EFFECT
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
    finding = ablation_finding(ablation, noise)
    if finding is not None:
        blocks.append(Para(_finding_text(finding)))
    return blocks


def _finding_text(finding: AblationFinding) -> str:
    if not finding.throughput_setting and not finding.latency_setting:
        return (
            "No separable setting has a measurable effect alone: reverting any one of them "
            "changes neither objective beyond noise. The gain over the baseline comes from the "
            "settings together (or from those that cannot be reverted alone)."
        )
    parts = []
    for what, setting, change in (
        ("throughput", finding.throughput_setting, finding.throughput_change),
        ("latency", finding.latency_setting, finding.latency_change),
    ):
        parts.append(
            f"Contributed most to {what}: **{setting}** (reverting it alone: {change} {what})."
            if setting
            else f"No setting alone has a measurable effect on {what}."
        )
    return "Of the separable settings: " + " ".join(parts)


def rate_sweep_blocks(rates: Sequence[Measurement], tput: str, lat: str) -> list[Block]:
    """Goodput's rate sweep: both configurations at rates around the recommended trial's knee,
    and whether the sweep confirms the knee."""
    best = next((m.subject for m in rates if m.subject != "baseline"), "")
    levels = sorted({m.label for m in rates}, key=float)
    rows = []
    for level in levels:
        row = [level]
        for who in ("baseline", best):
            m = next((x for x in rates if x.label == level and x.subject == who), None)
            row += _rate_cells(m)
        rows.append(tuple(row))
    verdict = knee_verdict([m for m in rates if m.subject == best])
    return [
        Heading(f"Rate sweep around the knee of {best}", 3),
        Para(
            "The study's workload re-timed to each mean request rate (Poisson), measured once "
            "each, baseline and recommended. " + verdict
        ),
        Table(
            (
                "request rate (req/s)",
                *(f"{who} {what}" for who in ("baseline", best) for what in (tput, lat, "SLOs")),
            ),
            tuple(rows),
            (0, 1, 2, 4, 5),
        ),
    ]


def _rate_cells(m: Measurement | None) -> list[str]:
    if m is None:
        return ["n/a", "", ""]
    if not m.ok or m.throughput is None or m.latency is None:
        return [f"crashed `{m.crash_class}`", "", ""]
    return [num(m.throughput, 2), num(m.latency), f"breaks {m.broken}" if m.broken else "hold"]


def knee_verdict(sweep: Sequence[Measurement]) -> str:
    """Confirmed when every rate up to 0.9 x the knee holds every SLO and every rate from
    1.25 x breaks one (the knee's own neighbourhood is within the search's tolerance and the
    run-to-run noise)."""
    by_rate = sorted(((float(m.label), m) for m in sweep), key=lambda pair: pair[0])
    if not by_rate:
        return ""
    knee = _knee_rate(by_rate)
    low = [m for rate, m in by_rate if rate <= 0.9 * knee * (1 + 1e-9)]
    high = [m for rate, m in by_rate if rate >= 1.25 * knee * (1 - 1e-9)]
    holds_low = all(m.ok and not m.broken for m in low)
    breaks_high = all(not m.ok or bool(m.broken) for m in high)
    if holds_low and breaks_high:
        return (
            f"**The knee is confirmed**: every SLO holds up to {0.9 * knee:,.2f} req/s and "
            f"breaks from {1.25 * knee:,.2f} req/s."
        )
    problems = []
    if not holds_low:
        problems.append("an SLO breaks below the knee")
    if not breaks_high:
        problems.append("the SLOs still hold well above it")
    return f"**The knee is not confirmed**: {' and '.join(problems)}."


def _knee_rate(by_rate: Sequence[tuple[float, Measurement]]) -> float:
    """The search's knee: the sweep's rates are `RATE_LEVELS` multiples of it."""
    index = RATE_LEVELS.index(1.0)
    return by_rate[index][0] if len(by_rate) > index else by_rate[-1][0]

"""The recommended configuration: the one trial of a study the user should deploy, and why.

Place in the data flow: read after a study through `optimizer.record`; the headline
(`optimizer.progress`), the report (`optimizer.report.recommendation`), the dashboard's study
note, `optimizer.export` and `optimizer.retune` all take their pick from here. The rule, in
log terms so that noise is relative (`optimizer.noise`: the band of each objective):

1. Only completed trials that meet every SLO take part.
2. A trial *beats another within noise* when it is worse by no more than the noise on either
   objective and better by more than the noise on at least one (`beats_within_noise`). Trials
   that some trial beats within noise are left out; at least one always remains (the best
   of throughput / band minus latency / band is beaten by none).
3. ``throughput`` (the default): among the remaining trials whose throughput is within noise
   of the best of them, the lowest latency (then the higher throughput). ``latency``: among
   those within noise of the lowest latency, the highest throughput. ``balanced``: the highest
   throughput per latency (throughput / latency).
4. Every other trial within noise of the pick on both objectives is reported as a tie.

The rule comes from the space file (`recommendation.rule`, else the objectives preset's,
else ``throughput``) or ``--recommend``; the run stores it with the study
(`remember_settings`) so later readers apply the same one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from optimizer.measurements import Measurement, load_measurements
from optimizer.noise import ESTIMATE, NoiseEstimate, noise_of
from optimizer.record import TrialRecord, read_all, study_url
from optimizer.spec.models import StudySpec
from optimizer.spec.presets import PRESET_RULES, RecommendRule

SETTINGS_ATTR = "recommendation"
RULES: tuple[RecommendRule, ...] = ("throughput", "latency", "balanced")


def _log(value: float) -> float:
    return math.log(max(value, 1e-12))


def gains(a: TrialRecord, b: TrialRecord) -> tuple[float, float]:
    """How much better `a` is than `b`, in log terms: (throughput, latency)."""
    return _log(a.throughput) - _log(b.throughput), _log(b.latency) - _log(a.latency)


def beats_within_noise(a: TrialRecord, b: TrialRecord, noise: NoiseEstimate) -> bool:
    """`a` is nowhere worse than `b` beyond noise, and better beyond noise somewhere."""
    d_tput, d_lat = gains(a, b)
    b_tput, b_lat = noise.band("throughput"), noise.band("latency")
    return d_tput >= -b_tput and d_lat >= -b_lat and (d_tput > b_tput or d_lat > b_lat)


def tied(a: TrialRecord, b: TrialRecord, noise: NoiseEstimate) -> bool:
    d_tput, d_lat = gains(a, b)
    return abs(d_tput) <= noise.band("throughput") and abs(d_lat) <= noise.band("latency")


@dataclass(frozen=True)
class Recommendation:
    """The pick, the rule and noise it was made with, and what it was weighed against.

    `best` is the best eligible trial on the rule's first objective (throughput; latency for
    ``latency``); `contenders` the eligible trials within noise of it there; the pick is the
    best on the other objective of those no trial beats within noise. When every contender is
    beaten, `anchor` is the best trial on the first objective that no trial beats (the pick is
    then within noise of it) and `beaten` the contender best on the other objective with the
    trial that beats it. `ties` are the trials within noise of the pick on both objectives;
    `eligible` counts the trials that met every SLO."""

    pick: TrialRecord
    rule: RecommendRule
    noise: NoiseEstimate
    best: TrialRecord
    contenders: tuple[TrialRecord, ...]
    ties: tuple[TrialRecord, ...]
    eligible: int
    anchor: TrialRecord | None = None
    beaten: tuple[TrialRecord, TrialRecord] | None = None

    def why(self, throughput_label: str, latency_label: str) -> str:
        """A few sentences: why this trial."""
        text = f"It meets every SLO ({self.eligible} completed trials do). "
        if self.rule == "balanced":
            text += (
                f"Of the trials no other trial beats within noise on both objectives, it has "
                f"the most {throughput_label} per {latency_label}."
            )
        elif self.rule == "latency":
            text += self._because(
                ("lowest", latency_label, lambda r: r.latency),
                ("highest", throughput_label, lambda r: -r.throughput),
            )
        else:
            text += self._because(
                ("highest", throughput_label, lambda r: -r.throughput),
                ("lowest", latency_label, lambda r: r.latency),
            )
        if self.ties:
            text += f" Tied within noise on both objectives: {_trials(self.ties)}."
        return f"{text} Noise: {self.noise.describe()}."

    def _because(
        self,
        first: tuple[str, str, Callable[[TrialRecord], float]],
        then: tuple[str, str, Callable[[TrialRecord], float]],
    ) -> str:
        """Best (or within noise of the best) on `first`, then the best of those on `then`
        (each: "highest"/"lowest", label, sort key where lower is better)."""
        pick, best = self.pick, self.best
        word, label, key = first
        then_word, then_label, then_key = then
        value = -key(best) if word == "highest" else key(best)
        if pick.number == best.number:
            text = f"It has the {word} {label}"
        elif pick in self.contenders:
            mine = -key(pick) if word == "highest" else key(pick)
            text = (
                f"Its {label} is within noise of the {word} (trial {best.number}, {_n(value)}; "
                f"this one {_pct(mine, value)})"
            )
        else:
            return self._fallback(first, then)
        if len(self.contenders) < 2:
            return text + "."
        ranked = min(self.contenders, key=lambda r: (then_key(r), r.number))
        among = "" if ranked is pick else " among those no other trial beats within noise"
        vs = (
            f" ({_pct(_signed(then_key, pick, then_word), _signed(then_key, best, then_word))} "
            f"against trial {best.number})"
            if pick.number != best.number
            else ""
        )
        return (
            f"{text}, and of the {len(self.contenders)} trials that are, it has the {then_word} "
            f"{then_label}{among}{vs}."
        )

    def _fallback(
        self,
        first: tuple[str, str, Callable[[TrialRecord], float]],
        then: tuple[str, str, Callable[[TrialRecord], float]],
    ) -> str:
        """Why the pick is not within noise of the best: every trial that is was beaten."""
        pick, best, anchor = self.pick, self.best, self.anchor or self.pick
        word, label, key = first
        then_word, then_label, _ = then
        value, mine = _signed(key, best, word), _signed(key, pick, word)
        text = (
            f"Its {label} is {_pct(mine, value)} against the {word} (trial {best.number}, "
            f"{_n(value)}), but every trial within noise of that one is beaten within noise by "
            "another"
        )
        if self.beaten is not None:
            loser, winner = self.beaten
            text += (
                f" (trial {loser.number}, the {then_word} {then_label} of them, by trial "
                f"{winner.number})"
            )
        return (
            f"{text}. Of the trials no other trial beats within noise, trial {anchor.number} "
            f"has the {word} {label} ({_n(_signed(key, anchor, word))}), and of those within "
            f"noise of it, this one has the {then_word} {then_label}."
        )


def _signed(key: Callable[[TrialRecord], float], record: TrialRecord, word: str) -> float:
    return -key(record) if word == "highest" else key(record)


def _trials(records: Sequence[TrialRecord]) -> str:
    numbers = [str(r.number) for r in records]
    if len(numbers) == 1:
        return f"trial {numbers[0]}"
    return f"trials {', '.join(numbers[:-1])} and {numbers[-1]}"


def _n(value: float) -> str:
    return f"{value:,.1f}"


def _pct(value: float, reference: float) -> str:
    return f"{(value - reference) / reference * 100:+.1f}%" if reference else "n/a"


def eligible(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Completed trials with objective values that meet every SLO."""
    return [
        r
        for r in records
        if r.state == TrialState.COMPLETE and r.values is not None and r.feasible
    ]


def recommend(
    records: Sequence[TrialRecord],
    rule: RecommendRule = "throughput",
    noise: NoiseEstimate = ESTIMATE,
) -> Recommendation | None:
    """The recommendation among `records` (None when no trial completed within its SLOs)."""
    usable = eligible(records)
    if not usable:
        return None
    remaining = [
        r for r in usable if not any(beats_within_noise(o, r, noise) for o in usable if o is not r)
    ]
    if not remaining:  # cannot happen (see the module docstring); never recommend nothing
        remaining = usable
    b_tput, b_lat = noise.band("throughput"), noise.band("latency")
    if rule == "latency":
        best = min(usable, key=lambda r: (r.latency, -r.throughput, r.number))
        gap = _log(best.latency)

        def behind(r: TrialRecord) -> float:
            return gap - _log(r.latency)

        contenders = [r for r in usable if behind(r) >= -b_lat]
        pool = _pool(contenders, remaining, behind, b_lat)
        pick = min(pool, key=lambda r: (-r.throughput, r.latency, r.number))
        second: Callable[[TrialRecord], float] = lambda r: -r.throughput  # noqa: E731
    elif rule == "balanced":
        best = max(usable, key=lambda r: (r.throughput, -r.latency, -r.number))
        contenders = remaining
        pick = max(remaining, key=lambda r: (_log(r.throughput) - _log(r.latency), -r.number))
    else:
        best = max(usable, key=lambda r: (r.throughput, -r.latency, -r.number))
        top = _log(best.throughput)

        def behind(r: TrialRecord) -> float:
            return _log(r.throughput) - top

        contenders = [r for r in usable if behind(r) >= -b_tput]
        pool = _pool(contenders, remaining, behind, b_tput)
        pick = min(pool, key=lambda r: (r.latency, -r.throughput, r.number))
        second = lambda r: r.latency  # noqa: E731
    ties = tuple(
        sorted(
            (r for r in usable if r is not pick and tied(r, pick, noise)),
            key=lambda r: r.number,
        )
    )
    found = Recommendation(pick, rule, noise, best, tuple(contenders), ties, len(usable))
    if rule == "balanced" or pick in contenders:
        return found
    loser = min(contenders, key=lambda r: (second(r), r.number))
    winners = [o for o in usable if beats_within_noise(o, loser, noise)]
    winner = min(winners, key=lambda r: (-behind(r), r.number))
    anchor = max(pool, key=lambda r: (behind(r), r.number))
    return dataclasses.replace(found, anchor=anchor, beaten=(loser, winner))


def _pool(
    contenders: list[TrialRecord],
    remaining: list[TrialRecord],
    behind: Callable[[TrialRecord], float],
    band: float,
) -> list[TrialRecord]:
    """The contenders no trial beats within noise; when every one is beaten, the remaining
    trials within `band` of the best that remains (`behind`: log distance to the best)."""
    kept = [r for r in contenders if r in remaining]
    if kept:
        return kept
    top = max(behind(r) for r in remaining)
    return [r for r in remaining if behind(r) >= top - band]


def choose(
    records: Sequence[TrialRecord],
    rule: RecommendRule = "throughput",
    noise: NoiseEstimate = ESTIMATE,
) -> TrialRecord | None:
    """The recommended trial among `records` (None when none completed within its SLOs)."""
    found = recommend(records, rule, noise)
    return found.pick if found is not None else None


# --- a stored study --------------------------------------------------------------------------


def rule_of(spec: StudySpec, override: RecommendRule | None = None) -> RecommendRule:
    """The rule a study of `spec` recommends with: `override`, the file's, the preset's."""
    if override is not None:
        return override
    if spec.recommendation.rule is not None:
        return spec.recommendation.rule
    preset = spec.objectives.preset
    return PRESET_RULES[preset] if preset is not None else "throughput"


def remember_settings(
    study: optuna.Study, spec: StudySpec, override: RecommendRule | None = None
) -> None:
    """Store the rule and the noise setting with the study (for report, export, retune)."""
    settings = {"rule": rule_of(spec, override), "noise": spec.recommendation.noise}
    if study.user_attrs.get(SETTINGS_ATTR) != settings:
        study.set_user_attr(SETTINGS_ATTR, settings)


def study_recommendation(
    study: optuna.Study,
    rule: RecommendRule | None = None,
    measurements: Sequence[Measurement] | None = None,
) -> Recommendation | None:
    """The recommendation of a stored study, with its stored rule (or `rule`) and its noise:
    the stored setting, or validation repeats (`measurements`, default: those stored), or the
    estimate."""
    stored = study.user_attrs.get(SETTINGS_ATTR)
    settings = stored if isinstance(stored, dict) else {}
    chosen = rule or settings.get("rule", "throughput")
    if measurements is None:
        url = study_url(study)
        measurements = load_measurements(url, study.study_name)[0] if url else []
    noise = noise_of(measurements, settings.get("noise", "auto"))
    records = read_all(study, states=(TrialState.COMPLETE,))
    return recommend(records, chosen if chosen in RULES else "throughput", noise)


def recommended(study: optuna.Study) -> TrialRecord | None:
    """The study's recommended trial (None when no trial completed within its SLOs)."""
    found = study_recommendation(study)
    return found.pick if found is not None else None

"""How a retune is shown: the drift table, the noise rule in words, retune.md and retune.json.

Place in the data flow: `optimizer.retune` re-measures and judges (`optimizer.drift` holds the
statistics); it collects everything in a `RetuneResult`, which prints and writes itself here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.drift import Drift, NoiseLevel, Runs
from optimizer.spec.models import StudySpec


@dataclass(frozen=True)
class Verdict:
    holds: bool
    reasons: tuple[str, ...]


def drift_table(spec: StudySpec, drifts: Sequence[Drift], sources: Sequence[str]) -> list[str]:
    tput = spec.objectives.throughput.label
    lat = spec.objectives.latency.label
    lines = [
        f"| configuration | stored from | {tput}: stored | now | change | "
        f"{lat}: stored | now | change | drift |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for drift, source in zip(drifts, sources, strict=True):
        cells = [drift.label, source]
        for objective in ("throughput", "latency"):
            change = next((c for c in drift.changes if c.objective == objective), None)
            if change is None:
                cells += ["-", "-", "-"]
            else:
                cells += [f"{change.stored:,.1f}", f"{change.now:,.1f}", f"{change.relative:+.1%}"]
        cells.append(drift.summary)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def noise_text(noise: NoiseLevel, z: float, min_change: float) -> str:
    return (
        f"Run-to-run noise (pooled relative standard deviation, {noise.dof} degrees of "
        f"freedom): throughput {noise.throughput:.1%}, latency {noise.latency:.1%}. Drift is a "
        f"change of the mean beyond max({z:g} x noise x sqrt(1/n_stored + 1/n_now), "
        f"{min_change:.0%})."
    )


@dataclass(frozen=True)
class RetuneResult:
    study: str
    runner: str
    versions: dict[str, str]
    repeats: int
    noise: NoiseLevel
    z: float
    min_change: float
    drifts: tuple[Drift, ...]
    sources: tuple[str, ...]
    verdict: Verdict
    new_study: str | None = None

    def to_json(self) -> str:
        document = {
            "study": self.study,
            "runner": self.runner,
            "engine_versions": self.versions,
            "repeats": self.repeats,
            "noise": dataclasses.asdict(self.noise),
            "drift_rule": {"z": self.z, "min_change": self.min_change},
            "recommendation_holds": self.verdict.holds,
            "reasons": list(self.verdict.reasons),
            "new_study": self.new_study,
            "configurations": [
                {
                    "trial": d.trial,
                    "label": d.label,
                    "stored_from": source,
                    "stored": _runs_json(d.stored),
                    "now": _runs_json(d.now),
                    "changes": [
                        {**dataclasses.asdict(c), "relative": c.relative, "verdict": c.verdict}
                        for c in d.changes
                    ],
                    "drifted": d.drifted,
                    "summary": d.summary,
                }
                for d, source in zip(self.drifts, self.sources, strict=True)
            ],
        }
        return json.dumps(document, indent=2) + "\n"

    def to_markdown(self, spec: StudySpec) -> str:
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        reasons = "; ".join(self.verdict.reasons)
        head = "holds" if self.verdict.holds else f"no longer holds: {reasons}"
        lines = [
            f"# Retune of {self.study}",
            "",
            f"Runner {self.runner}; engines {versions}; {self.repeats} runs per configuration.",
            "",
            noise_text(self.noise, self.z, self.min_change),
            "",
            *drift_table(spec, self.drifts, self.sources),
            "",
            f"The recommendation ({self.drifts[0].label.split(' (')[0]}) {head}.",
        ]
        if self.new_study:
            lines += ["", f"New study, warm-started from the old front: `{self.new_study}`."]
        return "\n".join(lines) + "\n"


def _runs_json(runs: Runs) -> dict[str, object]:
    return {
        "throughput": list(runs.throughput),
        "latency": list(runs.latency),
        "crashes": list(runs.crashes),
    }

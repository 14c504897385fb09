"""How much two measurements of one configuration differ by chance, per objective.

Place in the data flow: the recommendation rule (`optimizer.recommend`) and the ablation's
wording (`optimizer.report.validation`) treat differences smaller than this noise as no
difference. The noise of an objective is the relative standard deviation of one run:

- measured, when `optimizer.validate` stored repeats: repeat i sends the same prompts to
  every configuration (workload seed + i), as the search sends one request list to every
  trial, so the noise of comparing two configurations is what is left of the log values once
  each configuration's level and each repeat's prompts are taken out. A robust two-way fit
  (median polish) does that, and the noise is the scaled median absolute residual (``1.4826 *
  MAD``, corrected for the fitted levels): one configuration whose latency jumps between
  repeats, as the latency at a goodput knee can next to a cliff, does not set the noise every
  comparison allows for. With one repeated configuration only, its relative standard
  deviation;
- else the documented estimate `ESTIMATE`: 2% on each objective, the run-to-run part of the
  simulator's typical noise model (`runners.sim.Noise.typical`: every step time of a run
  scaled by one draw of sd 2%, plus 3% per step); re-measuring the shipped baselines with it
  gives 0.2-2.6% on throughput and 1.3-2.4% on latency (tests/optimizer/test_recommend.py
  checks qwen3-moe);
- or the space file's `recommendation.noise` (one fraction for both objectives).

Two single runs then differ by chance by up to `band` in log terms: `Z` (2) standard
deviations of the difference of two runs, ``Z * sqrt(2) * sd`` (5.7% for 2%).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from optimizer.measurements import Measurement

Objective = Literal["throughput", "latency"]
Z = 2.0


@dataclass(frozen=True)
class NoiseEstimate:
    """Relative standard deviation of one run, per objective, and where it comes from."""

    throughput: float
    latency: float
    source: str

    def band(self, objective: Objective) -> float:
        """The largest log-ratio two single runs of one configuration differ by chance."""
        sd = self.throughput if objective == "throughput" else self.latency
        return Z * math.sqrt(2.0) * sd

    def describe(self) -> str:
        return (
            f"{self.throughput:.1%} on throughput and {self.latency:.1%} on latency per run "
            f"({self.source}); differences within {math.expm1(self.band('throughput')):.1%} / "
            f"{math.expm1(self.band('latency')):.1%} count as noise"
        )


ESTIMATE = NoiseEstimate(
    0.02, 0.02, "estimate: the simulator's run-to-run noise model; no validation repeats yet"
)


def noise_from_repeats(measurements: Sequence[Measurement]) -> NoiseEstimate | None:
    """The noise of validation repeats (None without a configuration run twice)."""
    runs: dict[str, dict[str, Measurement]] = {}
    for m in measurements:
        if m.kind == "repeat" and m.ok:
            runs.setdefault(m.subject, {})[m.label] = m
    runs = {subject: by_label for subject, by_label in runs.items() if len(by_label) >= 2}
    if not runs:
        return None
    labels = sorted(set.intersection(*(set(by_label) for by_label in runs.values())))
    if len(runs) >= 2 and len(labels) >= 2:
        grid = [[runs[s][label] for label in labels] for s in runs]
        return NoiseEstimate(
            _paired_noise([[float(m.throughput or 0.0) for m in row] for row in grid]),
            _paired_noise([[float(m.latency or 0.0) for m in row] for row in grid]),
            f"validation repeats of {len(runs)} configurations on {len(labels)} shared "
            "prompt samples",
        )
    (one,) = list(runs.values())[:1]
    values = list(one.values())
    return NoiseEstimate(
        _cv([float(m.throughput or 0.0) for m in values]),
        _cv([float(m.latency or 0.0) for m in values]),
        "validation repeats of 1 configuration",
    )


def _paired_noise(values: list[list[float]]) -> float:
    """Robust relative noise of a configurations x repeats table: median polish of the logs,
    then the scaled median absolute residual, corrected for the fitted row and column levels."""
    logs = np.log(np.maximum(np.asarray(values, dtype=np.float64), 1e-12))
    residual = logs.copy()
    for _ in range(10):
        residual -= np.median(residual, axis=1, keepdims=True)
        residual -= np.median(residual, axis=0, keepdims=True)
    rows, cols = residual.shape
    scale = 1.4826 * float(np.median(np.abs(residual)))
    return scale * math.sqrt(rows * cols / ((rows - 1) * (cols - 1)))


def _cv(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean > 0 else 0.0


def noise_of(measurements: Sequence[Measurement], setting: float | str = "auto") -> NoiseEstimate:
    """The noise the study's recommendation uses: the file's setting, repeats, or `ESTIMATE`."""
    if isinstance(setting, float | int) and not isinstance(setting, bool):
        return NoiseEstimate(
            float(setting), float(setting), "the space file's recommendation.noise"
        )
    return noise_from_repeats(measurements) or ESTIMATE

"""The report's figures: the Pareto front (with re-measured means when validated) and the
hypervolume by trial, as PNG files beside report.md.

Place in the data flow: called by `optimizer.report.build`; matplotlib is imported only here,
and only when a figure is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

from optimizer.measurements import Measurement, interval
from optimizer.record import read_all
from optimizer.report.document import labels
from optimizer.report.hypervolume import hypervolume_history
from optimizer.report.pareto import ParetoReport


def plot_pareto(
    study: optuna.Study,
    report: ParetoReport,
    path: Path,
    measurements: Sequence[Measurement] = (),
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    tput, lat = labels(study)
    complete = read_all(study, (TrialState.COMPLETE,))
    front = {p.number for p in report.points}
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    others = [r for r in complete if r.number not in front and r.feasible and r.values]
    infeasible = [r for r in complete if not r.feasible and r.values]
    ax.scatter(
        [r.latency for r in others], [r.throughput for r in others],
        c="#9aa5b1", s=22, label="completed trials",
    )  # fmt: skip
    if infeasible:
        ax.scatter(
            [r.latency for r in infeasible], [r.throughput for r in infeasible],
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

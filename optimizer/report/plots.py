"""The report's figures: the Pareto front (points coloured by engine, the baseline marked,
labels that do not overlap, re-measured means when validated) and the hypervolume by trial, as
PNG files beside report.md.

Place in the data flow: called by `optimizer.report.build`; matplotlib is imported only here,
and only when a figure is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from optimizer.measurements import Measurement, interval
from optimizer.record import read_all
from optimizer.report.document import labels
from optimizer.report.hypervolume import hypervolume_history
from optimizer.report.label_layout import RINGS, Box, place_labels
from optimizer.report.pareto import ParetoReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes


LABEL_FONT = 8


def plot_pareto(
    study: optuna.Study,
    report: ParetoReport,
    path: Path,
    measurements: Sequence[Measurement] = (),
) -> Path:
    """Every completed trial coloured by engine (the front's points larger, joined, and
    labelled with their trial numbers where a label fits without overlapping), the baseline as
    a star, trials breaking an SLO as crosses, and re-measured means when validated."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    tput, lat = labels(study)
    complete = [r for r in read_all(study, (TrialState.COMPLETE,)) if r.values]
    front = {p.number for p in report.points}
    engines = sorted({r.engine for r in complete})
    palette = plt.get_cmap("tab10")
    colour = {engine: palette(i % 10) for i, engine in enumerate(engines)}
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for engine in engines:
        mine = [r for r in complete if r.engine == engine and r.feasible]
        ax.scatter(
            [r.latency for r in mine], [r.throughput for r in mine],
            color=colour[engine], s=[46 if r.number in front else 18 for r in mine],
            edgecolors=["black" if r.number in front else "none" for r in mine],
            linewidths=0.8, alpha=0.9, label=engine,
        )  # fmt: skip
    infeasible = [r for r in complete if not r.feasible]
    if infeasible:
        ax.scatter(
            [r.latency for r in infeasible], [r.throughput for r in infeasible],
            color=[colour[r.engine] for r in infeasible], marker="x", s=28,
            label="breaks an SLO (infeasible)",
        )  # fmt: skip
    pts = sorted(report.points, key=lambda p: p.latency)
    ax.plot(
        [p.latency for p in pts], [p.throughput for p in pts],
        "-", c="#34495e", lw=1.2, label="Pareto front", drawstyle="steps-post",
    )  # fmt: skip
    if report.baseline is not None:
        b = report.baseline
        ax.scatter([b.latency], [b.throughput], marker="*", s=260, c="gold", edgecolors="black",
                   zorder=5, label=f"baseline: engine defaults (trial {b.number})")  # fmt: skip
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
    others = [(r.latency, r.throughput) for r in complete if r.number not in front]
    _label_front(ax, fig.dpi, [(p.number, p.latency, p.throughput) for p in pts], others)
    fig.savefig(path)
    plt.close(fig)
    return path


def _label_front(
    ax: Axes,
    dpi: float,
    points: Sequence[tuple[int, float, float]],
    others: Sequence[tuple[float, float]],
) -> None:
    """Trial numbers beside the front's points, where they overlap no other label or point
    (`label_layout`); a label set further away gets a thin leader line."""
    to_display = ax.transData.transform
    shown = [tuple(to_display((x, y))) for _, x, y in points]
    obstacles = [tuple(to_display(xy)) for xy in others]
    pixel = dpi / 72.0
    sizes = [
        (len(str(n)) * LABEL_FONT * 0.62 * pixel, LABEL_FONT * 1.25 * pixel) for n, _, _ in points
    ]
    x0, y0, x1, y1 = ax.bbox.extents
    offsets = place_labels(
        [(float(x), float(y)) for x, y in shown],
        sizes,
        [(float(x), float(y)) for x, y in obstacles],
        bounds=Box(x0, y0, x1, y1),
    )
    for (number, x, y), offset in zip(points, offsets, strict=True):
        if offset is None:
            continue
        dx, dy = offset
        far = math.hypot(dx, dy) > RINGS[0] * 1.5
        ax.annotate(
            str(number), (x, y), textcoords="offset points",
            xytext=(dx / pixel, dy / pixel), fontsize=LABEL_FONT,
            ha="left" if dx >= 0 else "right", va="bottom" if dy >= 0 else "top",
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#7f8c8d"} if far else None,
        )  # fmt: skip


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

"""Hypervolume by trial: how fast the search found its front (the area the feasible front
dominates, trial after trial, as a share of the final value).

Place in the data flow: one section of the report and the data of its hypervolume plot.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from optimizer.record import TrialRecord, read_all
from optimizer.report.document import Block, Heading, Image, Para, Table, labels, num

Point = tuple[float, float]  # (throughput or goodput: up, latency: down)


def feasible_points(trials: Sequence[FrozenTrial]) -> list[Point]:
    """The objective values (throughput, latency) of every completed trial that met its SLOs."""
    return [
        (t.values[0], t.values[1])
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values
        and all(v <= 0 for v in t.constraints.values())
    ]


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
    records = sorted((r for r in read_all(study) if r.state.is_finished()), key=lambda r: r.number)

    def counts(r: TrialRecord) -> bool:
        return r.state == TrialState.COMPLETE and bool(r.values) and r.feasible

    feasible = [r for r in records if counts(r)]
    if not feasible:
        return [], (0.0, 0.0)
    ref = (
        0.9 * min(r.throughput for r in feasible),
        1.1 * max(r.latency for r in feasible),
    )
    seen: list[tuple[float, float]] = []
    history = []
    for r in records:
        if counts(r):
            seen.append((r.throughput, r.latency))
        history.append((r.number, hypervolume_2d(seen, ref)))
    return history, ref


def hypervolume_blocks(study: optuna.Study, png: str | None) -> list[Block]:
    history, ref = hypervolume_history(study)
    blocks: list[Block] = [Heading("Hypervolume by trial")]
    if not history:
        blocks.append(Para("No feasible completed trial yet."))
        return blocks
    tput, lat = labels(study)
    final = history[-1][1] or 1.0
    blocks.append(
        Para(
            f"Area dominated by the feasible front, with reference point {tput} "
            f"{num(ref[0])} and {lat} {num(ref[1])} (90% of the worst throughput, 110% of "
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

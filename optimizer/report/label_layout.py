"""Where the trial-number labels of a scatter plot go so that none overlaps another label or a
marked point: a greedy search over offsets around each point, nearest first.

Place in the data flow: `optimizer.report.plots` gives the points in display units (pixels)
and each label's size; this module knows nothing of matplotlib, so the layout is tested alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

RINGS = (8.0, 16.0, 26.0, 38.0, 52.0)
"""Distances (pixels) from the point at which a label is tried, nearest first."""
DIRECTIONS = 12


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in display units."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box) -> bool:
        return (
            self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1
        )


def _offsets() -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for radius in RINGS:
        for k in range(DIRECTIONS):
            angle = math.pi / 4 + 2 * math.pi * k / DIRECTIONS  # up-right first
            out.append((radius * math.cos(angle), radius * math.sin(angle)))
    return out


def _box(x: float, y: float, dx: float, dy: float, size: tuple[float, float]) -> Box:
    """The label's box when its anchor is offset by (dx, dy): it extends away from the point."""
    width, height = size
    left = x + dx if dx >= 0 else x + dx - width
    bottom = y + dy if dy >= 0 else y + dy - height
    return Box(left, bottom, left + width, bottom + height)


def place_labels(
    points: Sequence[tuple[float, float]],
    sizes: Sequence[tuple[float, float]],
    obstacles: Sequence[tuple[float, float]] = (),
    marker_radius: float = 4.0,
    bounds: Box | None = None,
) -> list[tuple[float, float] | None]:
    """An offset (dx, dy) for the label of each point, or None when no free place is near.

    Labels are placed in order; each takes the nearest offset whose box overlaps no placed
    label, no point of `points` or `obstacles` (within `marker_radius`) and stays in `bounds`.
    """
    markers = [
        Box(x - marker_radius, y - marker_radius, x + marker_radius, y + marker_radius)
        for x, y in [*points, *obstacles]
    ]
    placed: list[Box] = []
    result: list[tuple[float, float] | None] = []
    for (x, y), size in zip(points, sizes, strict=True):
        chosen: tuple[float, float] | None = None
        for dx, dy in _offsets():
            box = _box(x, y, dx, dy, size)
            if bounds is not None and not (
                bounds.x0 <= box.x0
                and box.x1 <= bounds.x1
                and bounds.y0 <= box.y0
                and box.y1 <= bounds.y1
            ):
                continue
            if any(box.overlaps(other) for other in (*placed, *markers)):
                continue
            chosen = (dx, dy)
            placed.append(box)
            break
        result.append(chosen)
    return result

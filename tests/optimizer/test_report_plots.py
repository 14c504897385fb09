"""The report's Pareto plot (points coloured by engine, the baseline marked, labels that never
overlap) and the importance table under the settings' own names."""

from __future__ import annotations

import itertools
from typing import Any

import matplotlib
import optuna
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from optimizer.report import plots
from optimizer.report.importance import by_setting
from optimizer.report.label_layout import RINGS, Box, place_labels
from optimizer.report.pareto import pareto_points
from tests.optimizer.report_study import study_in

matplotlib.use("Agg")


def test_labels_of_a_dense_cluster_overlap_nothing() -> None:
    points = [(100.0 + 6 * (i % 6), 100.0 + 5 * (i // 6)) for i in range(30)]
    sizes = [(14.0, 10.0)] * len(points)
    offsets = place_labels(points, sizes, marker_radius=3.0)
    boxes = []
    for (x, y), (w, h), offset in zip(points, sizes, offsets, strict=True):
        if offset is None:
            continue
        dx, dy = offset
        left = x + dx if dx >= 0 else x + dx - w
        bottom = y + dy if dy >= 0 else y + dy - h
        boxes.append(Box(left, bottom, left + w, bottom + h))
    assert len(boxes) >= 20, "most labels find a place"
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    markers = [Box(x - 3, y - 3, x + 3, y + 3) for x, y in points]
    assert not any(box.overlaps(m) for box in boxes for m in markers)


def test_a_lone_point_is_labelled_close_and_labels_stay_in_bounds() -> None:
    (offset,) = place_labels([(50.0, 50.0)], [(10.0, 8.0)])
    assert offset is not None and abs(complex(*offset)) == pytest.approx(RINGS[0])
    assert place_labels([(1.0, 1.0)], [(500.0, 500.0)], bounds=Box(0, 0, 100, 100)) == [None]


def test_importances_use_the_settings_own_names() -> None:
    table = by_setting(
        {
            "vllm.max-num-batched-tokens[0]": 0.2,
            "vllm.max-num-batched-tokens[1]": 0.1,
            "sglang.tp-size": 0.4,
            "engine": 0.3,
        }
    )
    assert table == pytest.approx(
        {("vllm", "max-num-batched-tokens"): 0.3, ("sglang", "tp-size"): 0.4, ("", "engine"): 0.3}
    )


def test_the_pareto_plot_colours_engines_marks_the_baseline_and_labels_apart(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    study: optuna.Study = study_in(tmp_path_factory, "plots")[0]
    drawn: list[Any] = []
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: drawn.append(fig)
    )
    plots.plot_pareto(study, pareto_points(study), tmp_path_factory.mktemp("png") / "p.png")
    (fig,) = drawn
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    engines = {str(t.user_attrs["engine"]) for t in study.trials if "engine" in t.user_attrs}
    assert engines <= set(legend), "one colour (legend entry) per engine"
    assert any(text.startswith("baseline: engine defaults (trial ") for text in legend)
    renderer = FigureCanvasAgg(fig).get_renderer()
    labels = [t.get_window_extent(renderer) for t in ax.texts]
    assert labels, "the front's points are labelled"
    for a, b in itertools.combinations(labels, 2):
        assert not a.overlaps(b), "labels never overlap"

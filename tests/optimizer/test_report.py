"""The report files of a simulated study: sections, plots, hypervolume, HTML twin."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from optimizer.report.build import write_report
from optimizer.report.document import Code, Heading, Para, Table
from optimizer.report.hypervolume import hypervolume_2d, hypervolume_history
from optimizer.report.render import to_html, to_markdown
from tests.optimizer.report_study import study_in

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    return study_in(tmp_path_factory, "report")[0]


def test_end_of_study_writes_the_report_beside_the_database(study: optuna.Study) -> None:
    url = study._storage._backend.url  # type: ignore[attr-defined]
    directory = Path(url.removeprefix("sqlite:///")).parent / study.study_name
    md = (directory / "report.md").read_text()
    for section in (
        "## Baseline vs best, per objective",
        "## Pareto front",
        "## Which settings matter",
        "## Crashes by class",
        "### Crashed on the runner",
        "### Rejected by pre-flight checks",
        "## Hypervolume by trial",
        "## Validation",
    ):
        assert section in md, section
    assert "vllm serve Qwen/Qwen3-235B-A22B-Instruct-2507 --tensor-parallel-size 8" in md
    assert "Not validated yet" in md
    assert (directory / "pareto.png").read_bytes().startswith(PNG)
    assert (directory / "hypervolume.png").read_bytes().startswith(PNG)
    html = (directory / "report.html").read_text()
    assert "<table>" in html and 'src="pareto.png"' in html


def test_baseline_vs_best_and_front_rows_match_the_study(
    study: optuna.Study, tmp_path: Path
) -> None:
    files = write_report(study, tmp_path)
    md = files.markdown.read_text()
    best = max(study.best_trials, key=lambda t: t.values[0])
    assert f"| trial {best.number} |" in md
    for trial in study.best_trials:
        assert f"`{trial.user_attrs['serve_command']}`" in md
    # a setting importance row for each objective column
    section = md.split("## Which settings matter")[1].split("##")[0]
    assert "`engine`" in section or "| vllm |" in section or "| sglang |" in section
    assert "`vllm." not in section and "[0]`" not in section, "the settings' own names"


def test_hypervolume_grows_monotonically_and_is_exact_in_2d(study: optuna.Study) -> None:
    history, _ = hypervolume_history(study)
    values = [hv for _, hv in history]
    assert values == sorted(values)
    assert values[-1] > 0
    # two points against reference (0, 10): rectangles 4x(10-5) + (2)x(5-1)
    assert hypervolume_2d([(4.0, 5.0), (2.0, 1.0)], (0.0, 10.0)) == pytest.approx(28.0)
    assert hypervolume_2d([(4.0, 5.0), (3.0, 6.0)], (0.0, 10.0)) == pytest.approx(20.0)
    assert hypervolume_2d([], (0.0, 10.0)) == 0.0


def test_markdown_and_html_render_the_same_blocks() -> None:
    blocks = [
        Heading("T", 1),
        Para("a **b** `c|d`"),
        Code("x < y"),
        Table(("k", "v"), (("a|b", "1"),), (1,)),
    ]
    md = to_markdown(blocks)
    assert "# T" in md and "| a\\|b | 1 |" in md and "|---|---:|" in md
    page = to_html(blocks, "t")
    assert "<strong>b</strong>" in page and "<code>c|d</code>" in page
    assert "x &lt; y" in page and '<td class="r">1</td>' in page

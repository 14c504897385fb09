"""The report files of a study: report.md, report.html, pareto.png and hypervolume.png.

Place in the data flow: last stage, after `optimizer.loop` (and optionally `optimizer.validate`)
filled the storage. `build_report` assembles the document from the sections (summary, the
recommendation, the Pareto table, validation tables, the simulator against measurement,
importances, crashes, hypervolume);
`write_report` draws the plots and renders the document beside the study. Written at the end
of every study and by ``python -m optimizer.report STUDY``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from optimizer.copy_paste import study_command
from optimizer.measurements import Measurement, load_measurements
from optimizer.record import study_dir_of, study_url
from optimizer.report.crashes import crash_blocks
from optimizer.report.document import Block, Para
from optimizer.report.hypervolume import hypervolume_blocks
from optimizer.report.importance import importance_blocks
from optimizer.report.pareto import pareto_points
from optimizer.report.plots import plot_hypervolume, plot_pareto
from optimizer.report.recommendation import recommendation_blocks
from optimizer.report.render import to_html, to_markdown
from optimizer.report.sections import pareto_blocks, summary_blocks
from optimizer.report.shadow import shadow_blocks
from optimizer.report.validation import validation_blocks
from optimizer.spec.presets import RecommendRule


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    pareto_png: Path | None
    hypervolume_png: Path | None


def build_report(
    study: optuna.Study,
    measurements: Sequence[Measurement] = (),
    info: Mapping[str, object] | None = None,
    pareto_png: str | None = None,
    hypervolume_png: str | None = None,
    rule: RecommendRule | None = None,
) -> list[Block]:
    report = pareto_points(study, rule)
    blocks = summary_blocks(study, report)
    blocks += recommendation_blocks(study, report)
    blocks += pareto_blocks(study, report, pareto_png)
    blocks += validation_blocks(study, measurements, info or {})
    blocks += shadow_blocks(study)
    blocks += importance_blocks(study)
    blocks += crash_blocks(study)
    blocks += hypervolume_blocks(study, hypervolume_png)
    blocks.append(
        Para(
            "Browse every trial, its note and artifacts: "
            f"`{study_command('dashboard', study.study_name, study_url(study))}`"
        )
    )
    return blocks


def write_report(
    study: optuna.Study, directory: Path | None = None, rule: RecommendRule | None = None
) -> ReportFiles:
    """Write report.md, report.html, pareto.png and hypervolume.png of `study` (`rule`: the
    recommendation rule instead of the study's)."""
    directory = directory or study_dir_of(study)
    directory.mkdir(parents=True, exist_ok=True)
    url = study_url(study)
    measurements, info = load_measurements(url, study.study_name) if url else ([], {})
    report = pareto_points(study, rule)
    pareto = plot_pareto(study, report, directory / "pareto.png", measurements)
    hv = plot_hypervolume(study, directory / "hypervolume.png")
    blocks = build_report(
        study, measurements, info, pareto.name, hv.name if hv is not None else None, rule
    )
    md = directory / "report.md"
    md.write_text(to_markdown(blocks))
    page = directory / "report.html"
    page.write_text(to_html(blocks, f"{study.study_name}: serving configuration report"))
    return ReportFiles(md, page, pareto, hv)

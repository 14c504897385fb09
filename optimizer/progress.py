"""What the study prints: one line when it starts, one per finished trial, the front at the end.

Place in the data flow: the loop calls these and nothing else prints for it. The first line
says whether the numbers are simulated (and on which calibration), emulated or measured; a
trial line (`optimizer.trial_line`) shows the position among the trials that reached the
runner, that kind, the space's own objectives or the crash class, and the candidate's settings
that differ from the engine defaults (from the `Resolved` the loop carries). At the end: the
Pareto table (`optimizer.report.pareto`), the report files (`optimizer.report.build`), the
dashboard's study note with the recommendation (`optimizer.report.recommendation`) and how to
browse the study.
"""

from __future__ import annotations

import sys
import textwrap

import optuna

from optimizer.config import StudyConfig
from optimizer.copy_paste import study_command
from optimizer.feasibility import Verdict
from optimizer.live import StudyProgress
from optimizer.objectives import trial_values
from optimizer.predictors import study_predictor
from optimizer.provenance import Provenance
from optimizer.record import Counts, count_trials
from optimizer.report.build import write_report
from optimizer.report.pareto import format_pareto, pareto_points
from optimizer.report.recommendation import write_study_note
from optimizer.storage import redact
from optimizer.trial_line import describe, progress_line
from runners.engines import Resolved
from runners.pool import Finished

HEADER_WIDTH = 100


def print_start(config: StudyConfig, counts: Counts, provenance: Provenance) -> StudyProgress:
    """What the study is about to run, and what its numbers will be (simulated, with the
    calibration; emulated, with the profile; or measured); the progress of this run."""
    total = config.n_trials
    how = f"sampler {config.sampler}"
    if study_predictor(config) is not None:
        how += f", each trial the best of {config.candidates_per_trial} screened"
    plan = (
        f"running until its front converges or {config.stop.time_budget_s:g} s pass ({how})"
        if config.stop is not None
        else f"running {max(0, total - counts.finished)} more (target {total}; {how})"
    )
    print(
        f"Study {config.study_name!r} in {redact(config.storage_url)}: {counts.finished} trials "
        f"finished, {plan}.",
        flush=True,
    )
    print(textwrap.fill(provenance.sentence, HEADER_WIDTH, subsequent_indent="    "), flush=True)
    return StudyProgress(
        total=total,
        done=counts.finished,
        kind=provenance.kind,
        objectives=config.spec.objectives,
        quiet=config.quiet,
    )


def print_trial(
    progress: StudyProgress,
    study: optuna.Study,
    config: StudyConfig,
    number: int,
    resolved: Resolved,
    done: Finished | None,
    verdict: Verdict | None,
) -> None:
    """One line for a finished trial: measured (`done`) or rejected by pre-flight (`verdict`);
    its values also update the best so far of the live display."""
    if config.quiet:
        return
    total = config.n_trials
    position = count_trials(study).finished
    values: tuple[float, float] | None = None
    feasible = False
    if done is not None and done.outcome is None:
        line = (
            f"[{position:>3}/{total}] trial {number:>3}  FAIL (worker lost: "
            f"{done.fault}); retried with the same parameters"
        )
    else:
        outcome = done.outcome if done is not None else None
        if outcome is not None and outcome.status == "ok" and outcome.metrics is not None:
            worth = trial_values(outcome, config.spec)
            values, feasible = worth.values, all(v <= 0 for v in worth.constraints.values())
        line = progress_line(
            number,
            position,
            total,
            outcome,
            verdict,
            config.spec.objectives,
            progress.kind,
            values,
        )
    line = f"{line}  | {describe(resolved)}"
    progress.finished(number, position, line, values, feasible, ran=done is not None)


def print_end(study: optuna.Study, config: StudyConfig, provenance: Provenance) -> None:
    """The Pareto table (its numbers labelled as the first line did), the report files, and
    how to browse the study."""
    print(f"\nNumbers below: {provenance.kind} (see the start of the output).")
    report = pareto_points(study)
    print(format_pareto(report, config.spec))
    try:
        write_study_note(study, report)
        files = write_report(study)
    except (OSError, ImportError, ValueError) as exc:  # the study itself is complete
        print(f"warning: report not written: {exc}", file=sys.stderr)
    else:
        print(f"\nReport: {files.markdown} (and report.html, {files.pareto_png})")
    url = config.storage_url if config.storage_given else None
    print(f"Browse it: {study_command('dashboard', study.study_name, url)}")

"""What the study prints: one line when it starts, one per finished trial, the front at the end.

Place in the data flow: the loop calls these and nothing else prints for it. A trial line
shows the position among the trials that reached the runner, the headline metrics or the crash
class, and the candidate's settings that differ from the engine defaults (from the `Resolved`
the loop carries). At the end: the Pareto table (`optimizer.report.pareto`), the report files
(`optimizer.report.build`), the dashboard's study note with the recommendation
(`optimizer.report.recommendation`) and how to browse the study.
"""

from __future__ import annotations

import math
import sys

import optuna

from optimizer.config import StudyConfig
from optimizer.feasibility import Verdict
from optimizer.record import Counts, count_trials
from optimizer.report.build import write_report
from optimizer.report.pareto import format_pareto, pareto_points
from optimizer.report.recommendation import write_study_note
from optimizer.storage import redact
from runners.engines import Resolved
from runners.pool import Finished
from runners.types import TrialOutcome

MAX_DESCRIPTION = 110


def print_start(config: StudyConfig, counts: Counts) -> None:
    total = config.n_trials
    print(
        f"Study {config.study_name!r} in {redact(config.storage_url)}: {counts.finished} trials "
        f"finished, running {max(0, total - counts.finished)} more (target {total}; sampler "
        f"{config.sampler}).",
        flush=True,
    )


def print_trial(
    study: optuna.Study,
    config: StudyConfig,
    number: int,
    resolved: Resolved,
    done: Finished | None,
    verdict: Verdict | None,
) -> None:
    """One line for a finished trial: measured (`done`) or rejected by pre-flight (`verdict`)."""
    if config.quiet:
        return
    total = config.n_trials
    position = count_trials(study).finished
    if done is not None and done.outcome is None:
        line = (
            f"[{position:>3}/{total}] trial {number:>3}  FAIL (worker lost: "
            f"{done.fault}); retried with the same parameters"
        )
    else:
        outcome = done.outcome if done is not None else None
        line = progress_line(number, position, total, outcome, verdict)
    print(f"{line}  | {describe(resolved)}", flush=True)


def describe(resolved: Resolved) -> str:
    """Engine, checkpoint and the settings that differ from the engine defaults."""
    candidate = resolved.candidate
    text = " ".join(f"{k}={v}" for k, v in resolved.minimal) or "(defaults)"
    full = f"{candidate.engine} {candidate.weight_dtype} {text}"
    return full if len(full) <= MAX_DESCRIPTION else full[: MAX_DESCRIPTION - 1] + "…"


def progress_line(
    number: int,
    position: int,
    total: int,
    outcome: TrialOutcome | None,
    verdict: Verdict | None,
) -> str:
    head = f"[{position:>3}/{total}] trial {number:>3}"
    if outcome is None:
        reason = verdict.crash_class if verdict is not None else "rejected"
        return f"{head}  PRUNED {reason} (pre-flight, no runner time)"
    if outcome.status == "ok" and outcome.metrics is not None:
        m = outcome.metrics
        result = (
            f"{m.output_throughput_tok_s:>9,.0f} out tok/s  p99 TPOT {m.tpot_ms.p99:>7.1f} ms  "
            f"p99 TTFT {m.ttft_ms.p99 / 1000:>5.1f} s"
        ) + knee_note(outcome)
    elif outcome.crash is not None:
        result = f"PRUNED {outcome.crash.crash_class}"
    else:
        result = "FAIL (infrastructure)"
    return f"{head}  {result}"


def knee_note(outcome: TrialOutcome) -> str:
    """Where a goodput trial's numbers were measured: its knee, or no load that held."""
    curve = outcome.workloads[0].curve if outcome.workloads else None
    if curve is None:
        return ""
    unit = "req/s" if curve.knob == "request_rate" else "in flight"
    knee = curve.knee
    if knee is None:
        return f"  no load holds the SLOs ({len(curve.probes)} tried; lowest shown)"
    at = "unbounded" if math.isinf(knee.load) else f"{knee.load:,.2f} {unit}"
    return f"  at the knee: {at} ({len(curve.probes)} loads)"


def print_end(study: optuna.Study, config: StudyConfig) -> None:
    """The Pareto table, the report files, and how to browse the study."""
    print()
    report = pareto_points(study)
    print(format_pareto(report, config.spec))
    try:
        write_study_note(study, report)
        files = write_report(study)
    except (OSError, ImportError, ValueError) as exc:  # the study itself is complete
        print(f"warning: report not written: {exc}", file=sys.stderr)
    else:
        print(f"\nReport: {files.markdown} (and report.html, {files.pareto_png})")
    where = f" --storage {redact(config.storage_url)}" if config.storage_given else ""
    print(f"Browse it: python -m optimizer.dashboard {study.study_name}{where}")

"""The report's "Simulator against measurement" section: each real trial's prediction, stored
before it ran, beside what it measured, and the errors over the study (with goodput, of the
goodput; with several workloads, of each workload's own prediction too).

Place in the data flow: one section of the report (`optimizer.report.build`), read from the
predictions the shadow simulator stored (`optimizer.predicted`). Studies without stored
predictions (simulated studies, older studies) get no section.
"""

from __future__ import annotations

import optuna

from optimizer.predicted import (
    ErrorStats,
    PredictionRow,
    error_summary,
    prediction_rows,
    workload_errors,
)
from optimizer.report.document import Block, Heading, Para, Table, labels, num

MAX_ROWS = 40


def shadow_blocks(study: optuna.Study) -> list[Block]:
    rows = prediction_rows(study.get_trials(deepcopy=False))
    if not rows:
        return []
    tput, lat = labels(study)
    first = tput.split(",")[0] if tput.startswith("goodput") else "throughput"
    blocks: list[Block] = [
        Heading("Simulator against measurement"),
        Para(
            "Before each real trial the shadow simulator, refitted on the study's own finished "
            "trials (measurements and crashes), predicted it; the prediction was stored on the "
            "trial before it ran. Error is |predicted / measured - 1|. 'fitted on' is the "
            "number of the study's runs the simulator had seen (0: the shipped calibration)."
            + (GOODPUT_NOTE if first == "goodput" else "")
        ),
        _summary_table(error_summary(rows), first),
    ]
    each = workload_errors(rows)
    if each:
        blocks.append(Para("Each workload's own prediction against its measurement:"))
        blocks.append(_summary_table(each, first))
    shown = rows[-MAX_ROWS:]
    if len(rows) > len(shown):
        blocks.append(Para(f"The last {len(shown)} of {len(rows)} real trials:"))
    blocks.append(
        Table(
            (
                "trial",
                "fitted on",
                f"{tput} predicted",
                "measured",
                "error",
                f"{lat} predicted",
                "measured",
                "error",
                "crash prob.",
            ),
            tuple(_row(r) for r in shown),
            (1, 2, 3, 4, 5, 6, 7, 8),
        )
    )
    return blocks


GOODPUT_NOTE = (
    " The predicted goodput is the throughput at the knee of the load search run on the "
    "calibrated simulator, as the trial runs it on the engine."
)


def _summary_table(stats: list[ErrorStats], first: str) -> Table:
    return Table(
        (
            "trials",
            "compared",
            f"{first} median error",
            "max",
            "latency median error",
            "max",
        ),
        tuple(
            (
                s.label,
                str(s.count),
                _pct(s.throughput_median),
                _pct(s.throughput_max),
                _pct(s.latency_median),
                _pct(s.latency_max),
            )
            for s in stats
        ),
        (1, 2, 3, 4, 5),
    )


def _row(row: PredictionRow) -> tuple[str, ...]:
    p = row.prediction
    measured = row.measured
    return (
        str(row.number),
        str(p.n_runs),
        _value(p.throughput),
        num(measured[0]) if measured else "crashed",
        _pct(row.throughput_error),
        _value(p.latency),
        num(measured[1]) if measured else "crashed",
        _pct(row.latency_error),
        f"{p.crash_probability:.2f}",
    )


def _value(value: float | None) -> str:
    return num(value) if value is not None else "no run"


def _pct(value: float | None) -> str:
    return f"{100.0 * value:.1f}%" if value is not None else "-"

"""Stored predictions against measurements: which trials count, the errors, the milestones."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from optimizer.predicted import (
    StoredPrediction,
    error_summary,
    prediction_rows,
    read_prediction,
    store_prediction,
)
from optimizer.record import CRASH_CLASS, REJECTED_PREFIX
from optimizer.report.document import Heading, Table
from optimizer.report.shadow import shadow_blocks


def _prediction(tput: float | None, n_runs: int, crash: float = 0.1) -> StoredPrediction:
    return StoredPrediction(tput, 50.0 if tput else None, 0.2, crash, n_runs, "test")


def _study(outcomes: list[tuple[StoredPrediction | None, object]]) -> optuna.Study:
    """Trials in order: (prediction, (tput, latency) | "crash" | "rejected")."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for prediction, outcome in outcomes:
        trial = study.ask()
        if prediction is not None:
            store_prediction(trial, prediction)
        if outcome == "crash":
            trial.set_user_attr(CRASH_CLASS, "oom")
            study.tell(trial, state=TrialState.PRUNED)
        elif outcome == "rejected":
            trial.set_user_attr(CRASH_CLASS, REJECTED_PREFIX + "oom")
            study.tell(trial, state=TrialState.PRUNED)
        else:
            assert isinstance(outcome, tuple)
            study.tell(trial, list(outcome))
    return study


def test_the_stored_prediction_reads_back_as_written() -> None:
    written = StoredPrediction(1234.5, None, 0.125, 0.3, 4, "calibrated on 4 runs")
    study = _study([(written, "crash")])
    assert read_prediction(study.trials[0]) == written


def test_rows_compare_runner_trials_only_and_errors_are_relative() -> None:
    study = _study(
        [
            (_prediction(110.0, 0), (100.0, 40.0)),
            (_prediction(90.0, 1), "crash"),
            (_prediction(80.0, 2), "rejected"),  # never ran: nothing measured
            (None, (100.0, 50.0)),  # no prediction stored (e.g. the baseline before shadow)
        ]
    )
    rows = prediction_rows(study.trials)
    assert [r.number for r in rows] == [0, 1]
    assert rows[0].throughput_error == pytest.approx(0.1)
    assert rows[0].latency_error == pytest.approx(0.25)
    assert rows[1].crashed and rows[1].throughput_error is None


def test_milestones_count_only_predictions_fitted_on_enough_runs() -> None:
    # the error falls as the simulator sees more runs: 50%, 40%, ..., 0%
    study = _study([(_prediction(100.0 * (1.5 - 0.1 * n), n), (100.0, 50.0)) for n in range(6)])
    summary = {s.label: s for s in error_summary(prediction_rows(study.trials))}
    assert set(summary) == {"every real trial", "after 3 real trials", "after 5 real trials"}
    assert summary["every real trial"].count == 6
    assert summary["every real trial"].throughput_max == pytest.approx(0.5)
    assert summary["after 3 real trials"].throughput_median == pytest.approx(0.1)
    assert summary["after 5 real trials"].throughput_median == pytest.approx(0.0, abs=1e-9)


def test_report_section_only_for_studies_with_predictions() -> None:
    assert shadow_blocks(_study([(None, (100.0, 50.0))])) == []
    blocks = shadow_blocks(_study([(_prediction(120.0, 0), (100.0, 50.0))]))
    assert Heading("Simulator against measurement") in blocks
    tables = [b for b in blocks if isinstance(b, Table)]
    assert tables[0].rows[0][:3] == ("every real trial", "1", "20.0%")
    assert tables[1].rows[0][:5] == ("0", "0", "120.0", "100.0", "20.0%")

"""The simulator's crashes agree with the shipped calibration data (issue 20's target)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.sim.agreement import CrashConfusion, crash_confusion
from runners.sim.replay import load_cases

DATA = Path(__file__).resolve().parents[2] / "runners" / "sim" / "data" / "calibration"


@pytest.fixture(scope="module")
def confusion() -> CrashConfusion:
    return crash_confusion(load_cases(DATA / "gpustack_runs.csv"))


def test_crash_rows_are_predicted_and_successful_runs_are_not_called_crashes(
    confusion: CrashConfusion,
) -> None:
    assert confusion.crashes == 7 and confusion.not_expressed == 0
    assert confusion.crashes_predicted >= 6, confusion.table()
    assert confusion.false_crashes <= 1, confusion.table()


def test_the_memory_crash_row_has_the_highest_memory_odds(confusion: CrashConfusion) -> None:
    """gps-0255 (FP8 TP4 at 32K batched tokens, out of memory under load) is the one measured
    memory crash: no successful run is given higher odds of a memory crash."""
    by_id = {r.run_id: r for r in confusion.rows}
    crash = by_id["gps-0255"]
    assert crash.memory_rule == "runtime_oom" and crash.memory_probability > 0.5
    ok = [r.memory_probability for r in confusion.rows if not r.measured_crash]
    assert max(ok) < crash.memory_probability

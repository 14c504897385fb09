"""Crash agreement of the simulator with measured runs: which crashes it predicts, and which
successful runs it wrongly calls crashes.

Place in the data flow: takes the (row, case) pairs of `runners.sim.replay.load_cases` (a CSV
in the replay schema whose `outcome` column says ``crash`` or ``ok``), predicts each case as
`replay.predict` does, and adds the memory pre-flight's crash probability and rule
(`screen.assess_memory`) so rows near the memory boundary show their odds.
scripts/crash_agreement.py prints the result; a test holds the shipped calibration data to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runners.sim.replay import predict
from runners.sim.replay_rows import ReplayCase
from runners.sim.screen import assess_memory


@dataclass(frozen=True)
class CrashRow:
    """One row: measured and predicted outcome, the predicted crash class, the memory odds."""

    run_id: str
    measured_crash: bool
    predicted_crash: bool
    crash_class: str
    memory_probability: float
    memory_rule: str


@dataclass(frozen=True)
class CrashConfusion:
    """Every row that could be predicted, and how many rows the tool cannot express."""

    rows: tuple[CrashRow, ...]
    not_expressed: int

    def count(self, measured_crash: bool, predicted_crash: bool) -> int:
        return sum(
            1
            for r in self.rows
            if r.measured_crash == measured_crash and r.predicted_crash == predicted_crash
        )

    @property
    def crashes_predicted(self) -> int:
        return self.count(True, True)

    @property
    def crashes(self) -> int:
        return sum(1 for r in self.rows if r.measured_crash)

    @property
    def false_crashes(self) -> int:
        return self.count(False, True)

    def table(self) -> str:
        tp, fn = self.count(True, True), self.count(True, False)
        fp, tn = self.count(False, True), self.count(False, False)
        return "\n".join(
            [
                "                    predicted crash   predicted ok",
                f"measured crash      {tp:15d}   {fn:12d}",
                f"measured ok         {fp:15d}   {tn:12d}",
                f"crash rows predicted: {self.crashes_predicted} of {self.crashes}; successful "
                f"runs called crashes: {self.false_crashes}; rows the tool cannot express: "
                f"{self.not_expressed}",
            ]
        )


def crash_confusion(
    pairs: Sequence[tuple[Mapping[str, str], ReplayCase]], seed: int = 0
) -> CrashConfusion:
    """Predict every case and compare with its row's measured `outcome`."""
    rows: list[CrashRow] = []
    not_expressed = 0
    for row, case in pairs:
        pred = predict(case, seed=seed)
        if pred["outcome"] == "error":
            not_expressed += 1
            continue
        probability, rule = 0.0, ""
        if case.config is not None:
            memory = assess_memory(case.config)
            probability, rule = memory.crash_probability, memory.crash_rule
        rows.append(
            CrashRow(
                run_id=row.get("run_id", ""),
                measured_crash=row.get("outcome", "ok") == "crash",
                predicted_crash=pred["outcome"] == "crash",
                crash_class=str(pred.get("crash_class", "")),
                memory_probability=probability,
                memory_rule=rule,
            )
        )
    return CrashConfusion(tuple(rows), not_expressed)


__all__ = ["CrashConfusion", "CrashRow", "crash_confusion"]

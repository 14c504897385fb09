"""Crashes by class: what crashed on the runner (with the GPU time it cost) and what pre-flight
rejected before launch, each with an example of the engine's own message.

Place in the data flow: one section of the report (`optimizer.report.build`), read from the
trial records of `optimizer.record`.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from optimizer.record import TrialRecord, read_all
from optimizer.report.document import Block, Heading, Para, Table, num, short


def crash_blocks(study: optuna.Study) -> list[Block]:
    runner: dict[str, list[TrialRecord]] = {}
    rejected: dict[str, list[TrialRecord]] = {}
    for r in read_all(study, (TrialState.PRUNED,)):
        cls = r.crash_class or "unknown"
        (rejected if r.is_rejection else runner).setdefault(cls, []).append(r)
    blocks: list[Block] = [Heading("Crashes by class")]

    def table(groups: dict[str, list[TrialRecord]], cost: bool) -> Table:
        rows = []
        for cls, trials in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            seconds = sum(t.runner.value("trial_seconds") for t in trials if t.runner)
            example = trials[0].crash_message.splitlines()
            row = [
                f"`{cls}`",
                str(len(trials)),
                ", ".join(str(t.number) for t in trials[:8]) + (" …" if len(trials) > 8 else ""),
            ]
            if cost:
                row.append(num(seconds / 60.0))
            row.append(short(example[0] if example else "", 160))
            rows.append(tuple(row))
        header: tuple[str, ...] = ("class", "trials", "trial numbers")
        header += ("GPU minutes lost (est.)",) if cost else ()
        return Table((*header, "example message"), tuple(rows), (1, 3) if cost else (1,))

    blocks.append(Heading("Crashed on the runner (engine started, or tried to)", 3))
    blocks.append(table(runner, True) if runner else Para("None."))
    blocks.append(Heading("Rejected by pre-flight checks (nothing launched)", 3))
    blocks.append(table(rejected, False) if rejected else Para("None."))
    return blocks

"""Which settings matter: PED-ANOVA importances per objective over the feasible completed trials.

Place in the data flow: one section of the report (`optimizer.report.build`); Optuna's
`importance` module does the estimate on the study itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import optuna
from optuna.trial import TrialState

from optimizer.record import read_all
from optimizer.report.document import Block, Heading, Para, Table, labels
from optimizer.space import setting_of


def importance_blocks(study: optuna.Study) -> list[Block]:
    tput, lat = labels(study)
    complete = [r for r in read_all(study, (TrialState.COMPLETE,)) if r.feasible]
    blocks: list[Block] = [Heading("Which settings matter (importance per objective)")]
    if len(complete) < 4:
        blocks.append(Para("Too few completed trials to estimate importances."))
        return blocks
    tables: list[dict[tuple[str, str], float]] = []
    for index in (0, 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(
                    study,
                    evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=lambda t, i=index: t.values[i],  # type: ignore[misc]
                )
        except (ValueError, RuntimeError) as exc:
            blocks.append(Para(f"Importances could not be computed: {exc}"))
            return blocks
        tables.append(by_setting(found))
    names = sorted(tables[0], key=lambda k: -(tables[0][k] + tables[1].get(k, 0.0)))
    shown = [n for n in names if tables[0][n] + tables[1].get(n, 0.0) >= 0.01][:12]
    rows = tuple(
        (f"`{n[1]}`", n[0] or "(all)", f"{tables[0][n]:.2f}", f"{tables[1].get(n, 0.0):.2f}")
        for n in shown
    )
    blocks.append(
        Para(
            f"PED-ANOVA importances (optuna.importance) over {len(complete)} feasible completed "
            "trials: how much each setting separates the best trials of each objective from "
            "the rest, normalized to sum to 1 (settings of one engine only vary in its "
            "trials; `engine` and `model_variant` are the study-wide choices of engine and "
            "checkpoint). Settings below 0.01 on both objectives are left out."
        )
    )
    blocks.append(Table(("setting", "engine", tput, lat), rows, (2, 3)))
    return blocks


def by_setting(importances: Mapping[str, float]) -> dict[tuple[str, str], float]:
    """Importances by (engine, setting) under the settings' own names: the alternatives of one
    setting (Optuna parameters ``vllm.max-num-batched-tokens[0]``, ``[1]``) add up."""
    total: dict[tuple[str, str], float] = {}
    for param, value in importances.items():
        key = setting_of(str(param))
        total[key] = total.get(key, 0.0) + float(value)
    return total

"""The dashboard notes of stored trials: reading one, and writing those trials never got.

Place in the data flow: beside `optimizer.record`, which writes each trial's note as the trial
is told; `optimizer.dashboard` calls `backfill_notes` for trials recorded before notes existed
(built from their record, with the provenance the study stored), and tests read notes back
with `read_note`.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from optimizer.adoption import own_trials
from optimizer.artifacts import NoteFacts, note_body, note_keys, write_note
from optimizer.provenance import KIND_KEY, sentences
from optimizer.record import RunnerInfo, read


def backfill_notes(study: optuna.Study) -> int:
    """Give every finished trial without a note one built from its record (older studies)."""
    storage = study._storage
    existing = storage.get_study_system_attrs(study._study_id)
    added = 0
    for trial in own_trials(study):  # an adopted trial has nothing this tool could say
        if not trial.state.is_finished() or note_keys(trial._trial_id)[0] in existing:
            continue
        record = read(trial)
        kind = record.runner.numbers if record.runner is not None else None
        facts = NoteFacts(
            engine=record.engine,
            weight_dtype=record.weight_dtype,
            serve_command=record.serve_command,
            launch_command=record.launch_command,
            state=trial.state.name,
            baseline=record.baseline,
            metrics=record.metrics,
            runner=_runner_note(record.runner),
            crash_class=record.crash_class,
            crash_message=record.crash_message,
            crash_phase=record.crash_phase,
            constraints=record.constraints,
            provenance=sentences(study, [kind])[0] if kind is not None else "",
        )
        write_note(storage, study._study_id, trial._trial_id, note_body(facts))
        added += 1
    return added


def read_note(study: optuna.Study, trial: FrozenTrial) -> str | None:
    """The dashboard note of `trial` (None when it has none)."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    version_key, prefix = note_keys(trial._trial_id)
    if version_key not in attrs:
        return None
    chunks: list[str] = []
    while f"{prefix}{len(chunks)}" in attrs:
        chunks.append(str(attrs[f"{prefix}{len(chunks)}"]))
    return "".join(chunks)


def _runner_note(runner: RunnerInfo | None) -> dict[str, float | str] | None:
    if runner is None:
        return None
    info: dict[str, float | str] = {"name": runner.name, **runner.diagnostics}
    if runner.numbers is not None:
        info[KIND_KEY] = runner.numbers
    if runner.shape is not None:
        info["replicas"] = runner.shape.replicas
        info["gpus_per_replica"] = runner.shape.gpus_per_replica
    return info

"""`python -m optimizer.dashboard STUDY-or-SPACE`: optuna-dashboard on a study, with its artifacts.

Place in the data flow: a viewer over the storage the driver wrote. It serves optuna-dashboard
on 127.0.0.1 with the study's `FileSystemArtifactStore` (``<study dir>/artifacts``, filled by
`optimizer.artifacts` as trials are told), so every trial shows its note (serve command, key
metrics, crash class) and its files (benchmark JSON, engine log tail). Objective names come
from the study's metric names, and SLO-breaking trials show as infeasible because the driver
writes the legacy ``constraints`` attribute that optuna-dashboard 0.21 reads. Trials recorded
before notes existed get one here (notes are study attributes; artifacts can only be attached
while a trial runs, so older trials have none). Read-only otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import optuna

from optimizer.artifacts import NoteFacts, artifact_store, note_body, note_keys, write_note
from optimizer.validate import StudyRef, add_study_arguments, locate, open_study
from runners.errors import ServingOptimizerError

DEFAULT_PORT = 8080


def backfill_notes(study: optuna.Study) -> int:
    """Give every finished trial without a note one built from its user attributes."""
    storage = study._storage
    existing = storage.get_study_system_attrs(study._study_id)
    added = 0
    for trial in study.get_trials(deepcopy=False):
        if not trial.state.is_finished() or note_keys(trial._trial_id)[0] in existing:
            continue
        attrs = trial.user_attrs
        metrics = attrs.get("metrics")
        runner = attrs.get("runner")
        facts = NoteFacts(
            engine=str(attrs.get("engine", trial.params.get("engine", "?"))),
            weight_dtype=str(trial.params.get("model_variant", "?")),
            serve_command=str(attrs.get("serve_command", "")),
            state=trial.state.name,
            baseline=bool(attrs.get("baseline")),
            metrics=metrics if isinstance(metrics, dict) else None,
            runner=runner if isinstance(runner, dict) else None,
            crash_class=str(attrs.get("crash_class", "")),
            crash_message=str(attrs.get("crash_message", "")),
            crash_phase=str(attrs.get("crash_phase", "")),
            constraints={str(k): float(v) for k, v in trial.constraints.items()} or None,
        )
        write_note(storage, study._study_id, trial._trial_id, note_body(facts))
        added += 1
    return added


def serve(ref: StudyRef, host: str, port: int) -> None:
    from optuna_dashboard import run_server

    run_server(ref.url, host=host, port=port, artifact_store=artifact_store(ref.directory))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m optimizer.dashboard",
        description="Browse a study in optuna-dashboard with its trial notes and artifacts.",
        epilog="Example: python -m optimizer.dashboard qwen3-moe",
    )
    add_study_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="default %(default)s (loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default %(default)s")
    ns = parser.parse_args(argv)
    try:
        ref = locate(ns.study, ns.storage, ns.study_name)
        study = open_study(ref)
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    added = backfill_notes(study)
    if added:
        print(f"added notes to {added} trials recorded before notes existed")
    print(
        f"Study {ref.name!r} ({len(study.trials)} trials) at http://{ns.host}:{ns.port}/ "
        f"with artifacts from {ref.directory / 'artifacts'}; Ctrl-C stops it.",
        flush=True,
    )
    try:
        serve(ref, ns.host, ns.port)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

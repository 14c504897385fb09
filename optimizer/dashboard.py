"""`python -m optimizer.dashboard STUDY-or-SPACE`: optuna-dashboard on a study, with its artifacts.

Place in the data flow: a viewer over the storage the driver wrote. It serves optuna-dashboard
on 127.0.0.1 with the study's `FileSystemArtifactStore` (``<study dir>/artifacts``, filled by
`optimizer.record` as trials are told), so every trial shows its note (serve command, key
metrics, instance shape, crash class) and its files (benchmark JSON, engine log tail).
Objective names come from the study's metric names, and SLO-breaking trials show as infeasible
because the record writes the legacy ``constraints`` attribute that optuna-dashboard 0.21
reads. Trials recorded before notes existed get one here (`optimizer.notes.backfill_notes`;
artifacts can only be attached while a trial runs, so older trials have none), and the study
note is brought up to date with the recommendation and why (`optimizer.report.recommendation`;
validation may have changed the noise it allows for). Read-only otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from optimizer.artifacts import artifact_store
from optimizer.cli import StudyRef, add_study_arguments, locate, open_study
from optimizer.notes import backfill_notes
from optimizer.report.pareto import pareto_points
from optimizer.report.recommendation import write_study_note
from optimizer.version import add_version_argument
from runners.errors import ServingOptimizerError

DEFAULT_PORT = 8080


def serve(ref: StudyRef, host: str, port: int) -> None:
    from optuna_dashboard import run_server

    run_server(ref.url, host=host, port=port, artifact_store=artifact_store(ref.directory))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m optimizer.dashboard",
        description="Browse a study in optuna-dashboard with its trial notes and artifacts.",
        epilog="Example: python -m optimizer.dashboard qwen3-moe",
    )
    add_version_argument(parser)
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
    write_study_note(study, pareto_points(study))
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

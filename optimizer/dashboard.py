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
validation may have changed the noise it allows for).

Served through `optimizer.dashboard_guard`: read-only unless ``--allow-writes``, the Host header
checked against the bound address, a non-loopback bind only with ``--expose``, and an optional
access token (``--token`` or the ``SERVING_OPTIMIZER_DASHBOARD_TOKEN`` environment variable).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from wsgiref.simple_server import WSGIServer

from optimizer.artifacts import artifact_store
from optimizer.cli import StudyRef, add_study_arguments, locate, open_study
from optimizer.dashboard_guard import GuardPolicy, allowed_hosts, guarded_server, is_loopback
from optimizer.errors import UsageError
from optimizer.notes import backfill_notes
from optimizer.report.pareto import pareto_points
from optimizer.report.recommendation import write_study_note
from optimizer.version import add_version_argument
from runners.errors import ServingOptimizerError

DEFAULT_PORT = 8080
TOKEN_ENV = "SERVING_OPTIMIZER_DASHBOARD_TOKEN"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{8,}")


def check_exposure(ns: argparse.Namespace) -> GuardPolicy:
    """The guard's policy from the flags; raises `UsageError` for a bind or token not allowed."""
    if not is_loopback(ns.host) and not ns.expose:
        raise UsageError(
            f"--host {ns.host} is not a loopback address: anyone who can reach it could browse "
            "the study; add --expose to mean it (and consider --token)"
        )
    token = ns.token or os.environ.get(TOKEN_ENV) or None
    if token is not None and not TOKEN_PATTERN.fullmatch(token):
        raise UsageError(
            "--token (or $" + TOKEN_ENV + ") must be at least 8 characters from "
            "A-Z a-z 0-9 . _ ~ -; pick another"
        )
    hosts = allowed_hosts(ns.host, ns.port, ns.allow_host)
    return GuardPolicy(hosts=hosts, allow_writes=ns.allow_writes, token=token)


def bind(ref: StudyRef, host: str, port: int, policy: GuardPolicy) -> WSGIServer:
    from optuna_dashboard import wsgi

    app = wsgi(ref.url, artifact_store=artifact_store(ref.directory))
    return guarded_server(app, host, port, policy)


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
    parser.add_argument(
        "--expose",
        action="store_true",
        help="required for a --host that is not loopback (e.g. 0.0.0.0); prints a warning",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept requests whose Host header is NAME:PORT (repeatable); others get "
        "421, which stops DNS rebinding. Needed with --expose for the name users type",
    )
    parser.add_argument(
        "--allow-writes",
        action="store_true",
        help="let the dashboard change the storage (delete studies, edit notes, tell trials); "
        "without it every such request gets 403",
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"require this token (8+ of A-Z a-z 0-9 . _ ~ -; default ${TOKEN_ENV}, which keeps "
        "it out of the process list): open http://HOST:PORT/?token=T once and the browser keeps "
        "a cookie, or send 'Authorization: Bearer T'; anything else gets 401",
    )
    ns = parser.parse_args(argv)
    try:
        policy = check_exposure(ns)
        ref = locate(ns.study, ns.storage, ns.study_name)
        study = open_study(ref, any_objectives=True)
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(study.directions) == 2:
        added = backfill_notes(study)
        if added:
            print(f"added notes to {added} trials recorded before notes existed")
        write_study_note(study, pareto_points(study))
    else:
        print(
            f"note: study {ref.name!r} has {len(study.directions)} objective(s), so this tool did "
            "not make it; it is shown as it is, without trial notes"
        )
    try:
        server = bind(ref, ns.host, ns.port, policy)
    except OSError as exc:
        print(
            f"error: cannot listen on {ns.host}:{ns.port}: {exc.strerror}; pick --port",
            file=sys.stderr,
        )
        return 2
    if ns.expose and not is_loopback(ns.host):
        print(
            f"warning: the dashboard listens on {ns.host}, not only loopback; it answers "
            f"Host {', '.join(sorted(policy.hosts))} (--allow-host adds names); "
            + ("a token is required" if policy.token else "no token is set (see --token)"),
            file=sys.stderr,
        )
    mode = "read-write" if policy.allow_writes else "read-only"
    print(
        f"Study {ref.name!r} ({len(study.trials)} trials, {mode}) at http://{ns.host}:{ns.port}/ "
        f"with artifacts from {ref.directory / 'artifacts'}; Ctrl-C stops it.",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return 0
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

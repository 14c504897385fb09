"""`python -m optimizer.export STUDY`: deploy what a study found, in the formats asked for.

Place in the data flow: after a study (and optionally its validation), this reads the stored
trials through `optimizer.record`, takes the recommended trial (`optimizer.recommend`) or the
one named with ``--trial``, plans its deployment (`optimizer.export.plan`) and writes, under
``studies/<name>/export/`` or ``--out``:

- ``engine``: the engine's own configuration files of the trial (``trial-<n>/engine/``);
- ``launch``: ``trial-<n>/launch.sh`` for one node (every instance on its devices and port)
  and ``trial-<n>/nginx.conf``, the load balancer in front (with the engine files);
- ``kubernetes``: ``trial-<n>/kubernetes.yaml``, a ConfigMap, a Deployment with GPU requests
  and a Service;
- ``json`` / ``csv``: ``front.json`` / ``front.csv``, the Pareto front with every metric.

Everything is rendered before anything is written: an error (no such trial, a trial that did
not complete, an engine without a public image for Kubernetes) exits 2 with nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from optimizer.adoption import adopted_before
from optimizer.cli import StudyRef, add_study_arguments, locate, open_study, spec_for
from optimizer.errors import ExportError
from optimizer.export.front import front_csv, front_json, front_rows
from optimizer.export.kube import manifests_yaml
from optimizer.export.node import launch_script, nginx_conf
from optimizer.export.plan import plan_deployment
from optimizer.recommend import recommended
from optimizer.record import TrialRecord, read
from optimizer.spec.models import StudySpec
from optimizer.storage import redact
from optimizer.version import add_version_argument
from runners.errors import ServingOptimizerError

EXIT_USAGE = 2
FORMATS = ("engine", "launch", "kubernetes", "json", "csv")
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class OutFile:
    path: Path
    text: str
    executable: bool = False


def export_dir(ref: StudyRef, out: str | None) -> Path:
    """Where an export is written: ``--out``, else ``<study folder>/export``. Every path of an
    export is built under this folder from fixed names and trial numbers only."""
    return Path(out) if out else ref.directory / "export"


def chosen_trial(study: optuna.Study, number: int | None) -> TrialRecord:
    """Trial `number`, or the recommended one; it must have completed."""
    if number is None:
        best = recommended(study)
        if best is None:
            raise ExportError(
                "the study has no completed trial that meets every SLO, so nothing is "
                "recommended; name one with --trial N"
            )
        return best
    if number < adopted_before(study):
        raise ExportError(
            f"trial {number} was adopted from a study another program made (--adopt): it has "
            "no serve command to export; pick one of this tool's trials"
        )
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ExportError(
            f"the study has no trial {number} (trials 0 to {max(trials, default=-1)})"
        )
    record = read(trials[number])
    if record.state != TrialState.COMPLETE:
        why = f", {record.crash_class}" if record.crash_class else ""
        raise ExportError(
            f"trial {number} did not complete ({record.state.name}{why}): nothing was measured "
            "to deploy; pick a completed trial, e.g. from front.csv"
        )
    return record


def render(
    study: optuna.Study,
    spec: StudySpec,
    root: Path,
    formats: Sequence[str],
    *,
    trial: int | None = None,
    port: int = DEFAULT_PORT,
    image: str | None = None,
) -> list[OutFile]:
    """Every file of the export, rendered in memory (nothing is written here)."""
    files: list[OutFile] = []
    if {"engine", "launch", "kubernetes"} & set(formats):
        record = chosen_trial(study, trial)
        dep = plan_deployment(study.study_name, spec, record, port, image)
        folder = root / f"trial-{record.number}"
        if "engine" in formats or "launch" in formats:
            files += [OutFile(folder / name, text) for name, text in dep.files.items()]
        if "launch" in formats:
            files.append(OutFile(folder / "launch.sh", launch_script(dep), executable=True))
            files.append(OutFile(folder / "nginx.conf", nginx_conf(dep)))
        if "kubernetes" in formats:
            files.append(OutFile(folder / "kubernetes.yaml", manifests_yaml(dep)))
    if {"json", "csv"} & set(formats):
        rows = front_rows(study, spec)
        if not rows:
            raise ExportError("the study has no completed trial on its front to export")
        if "json" in formats:
            files.append(OutFile(root / "front.json", front_json(study.study_name, spec, rows)))
        if "csv" in formats:
            files.append(OutFile(root / "front.csv", front_csv(spec, rows)))
    return files


def write(files: Sequence[OutFile]) -> None:
    for f in files:
        f.path.parent.mkdir(parents=True, exist_ok=True)
        f.path.write_text(f.text, encoding="utf-8")
        if f.executable:
            f.path.chmod(0o755)


def parse_formats(values: Sequence[str] | None) -> list[str]:
    """``--format`` values (repeatable, comma-separated, ``all``) as a list of formats."""
    chosen: list[str] = []
    for value in values or ["all"]:
        for name in (part.strip() for part in value.split(",")):
            if name == "all":
                chosen += [f for f in FORMATS if f not in chosen]
            elif name in FORMATS:
                chosen += [] if name in chosen else [name]
            else:
                raise ExportError(
                    f"--format {name!r}: not a format; use {', '.join(FORMATS)} or all"
                )
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m optimizer.export",
        description="Write the deployable artifacts of a study's recommended configuration (or "
        "of any completed trial): the engine's config files, a launch script with a load "
        "balancer, Kubernetes manifests, and the Pareto front as JSON and CSV.",
        epilog="Example: python -m optimizer.export qwen3-moe --format engine launch",
    )
    add_version_argument(parser)
    add_study_arguments(parser)
    parser.add_argument("--trial", type=int, help="trial number (default: the recommended one)")
    parser.add_argument(
        "--format",
        nargs="+",
        metavar="FORMAT",
        help=f"any of {', '.join(FORMATS)}, or all (default)",
    )
    parser.add_argument("--out", help="folder to write into (default: studies/<name>/export)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="where clients connect: the load balancer and the Service (default %(default)s; "
        "instances listen on the following ports)",
    )
    parser.add_argument("--image", help="container image for Kubernetes (default: the engine's)")
    ns = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        formats = parse_formats(ns.format)
        ref = locate(ns.study, ns.storage, ns.study_name)
        study = open_study(ref)
        spec = spec_for(ref, study)
        root = export_dir(ref, ns.out)
        files = render(study, spec, root, formats, trial=ns.trial, port=ns.port, image=ns.image)
        write(files)
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: cannot write the export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"Exported study {ref.name!r} ({redact(ref.url)}) to {root}:")
    for f in files:
        print(f"  {f.path}")
    return 0

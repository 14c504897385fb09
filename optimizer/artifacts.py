"""What each trial carries into optuna-dashboard: a Markdown note and files in an artifact store.

Place in the data flow: `optimizer.record` builds the note (`note_body`, `write_note`) and
uploads the files (`attach_files`) when it records a trial, before `study.tell` (Optuna accepts
trial artifacts only while the trial runs). A note holds the serve command, the key metrics
and the crash class; artifacts are the benchmark JSON (`vllm bench serve` keys) and the engine
log tail, both brought by the runner (LocalRunner the real ones, SimRunner simulated ones
marked as such); this module only uploads them. Files live in an Optuna
`FileSystemArtifactStore` under ``<study dir>/artifacts``, where the study dir sits next to a
SQLite file (``studies/<name>.db`` -> ``studies/<name>/``) or under ``studies/<name>/`` for
other storages; `python -m optimizer.dashboard` serves it.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.storages import BaseStorage, RDBStorage

from optimizer.paths import check_name
from optimizer.sqlite_url import sqlite_file
from optimizer.storage import STUDIES_DIR
from runners.types import (
    TrialOutcome,
)

LOG_TAIL_LINES = 400
NOTE_CHUNK = 2045  # optuna-dashboard splits notes into study system attributes of this size


def storage_url(storage: BaseStorage) -> str | None:
    """The database URL behind `storage` (Optuna wraps RDBStorage in a cache layer)."""
    backend = getattr(storage, "_backend", storage)
    return str(backend.url) if isinstance(backend, RDBStorage) else None


def study_dir(study_name: str, url: str | None) -> Path:
    """Where a study's artifacts and report live: beside its SQLite file, else studies/<name>."""
    check_name(study_name, "study name")  # the name is one folder, never a path
    database = sqlite_file(url) if url is not None else None
    if database is not None:
        return database.parent / study_name
    return STUDIES_DIR / study_name


def artifact_store(directory: Path) -> FileSystemArtifactStore:
    path = directory / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


# --- notes ---------------------------------------------------------------------------------


def note_keys(trial_id: int) -> tuple[str, str]:
    """(version key, body-chunk prefix) of a trial note, as optuna-dashboard 0.21 stores it."""
    return f"dashboard:{trial_id}:note_ver", f"dashboard:{trial_id}:note_str:"


def write_note(storage: BaseStorage, study_id: int, trial_id: int, body: str) -> None:
    """Store a trial's first note: one round trip for the version, one per 2,045 characters.

    `optuna_dashboard.save_note` does the same plus two reads of every study system attribute
    (all notes of the study), which grows with the study; a fresh trial has no note to clear.
    """
    version_key, prefix = note_keys(trial_id)
    storage.set_study_system_attr(study_id, version_key, 1)
    for index in range(max(1, math.ceil(len(body) / NOTE_CHUNK))):
        chunk = body[index * NOTE_CHUNK : (index + 1) * NOTE_CHUNK]
        storage.set_study_system_attr(study_id, f"{prefix}{index}", chunk)


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def metrics_table(metrics: Mapping[str, float]) -> list[str]:
    rows = [
        ("output throughput", f"{_fmt(metrics['output_throughput_tok_s'])} tok/s"),
        ("request throughput", f"{_fmt(metrics['request_throughput_req_s'], 2)} req/s"),
        ("p99 TPOT", f"{_fmt(metrics['p99_tpot_ms'])} ms"),
        ("p99 TTFT", f"{_fmt(metrics['p99_ttft_ms'])} ms"),
        ("p99 E2E latency", f"{_fmt(metrics['p99_e2el_ms'])} ms"),
        (
            "median TPOT / TTFT",
            f"{_fmt(metrics['median_tpot_ms'])} / {_fmt(metrics['median_ttft_ms'])} ms",
        ),
        ("requests completed / failed", f"{int(metrics['completed'])} / {int(metrics['failed'])}"),
    ]
    return ["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


@dataclass(frozen=True)
class NoteFacts:
    """Everything a trial note says, gathered from the trial record (optimizer.record)."""

    engine: str
    weight_dtype: str
    serve_command: str
    state: str
    launch_command: str = ""
    baseline: bool = False
    metrics: Mapping[str, float] | None = None
    runner: Mapping[str, float | str] | None = None
    crash_class: str = ""
    crash_message: str = ""
    crash_phase: str = ""
    constraints: Mapping[str, float] | None = None
    efficiency_note: str = ""
    """For a simulated trial on a GPU never measured: whose efficiencies it took."""
    provenance: str = ""
    """Whether the numbers are simulated (with the calibration), emulated or measured."""


def note_body(facts: NoteFacts) -> str:
    head = f"**{facts.engine}** · {facts.weight_dtype} checkpoint · {facts.state}"
    if facts.baseline:
        head += " · **baseline** (engine defaults)"
    if facts.launch_command:  # a real trial: what it ran, then what to deploy
        lines = [head, "", "As run (works in this trial's environment):", ""]
        lines += ["```", facts.launch_command, "```", ""]
        lines += ["Engine command (for the target machine):", ""]
    else:
        lines = [head, ""]
    lines += ["```", facts.serve_command, "```", ""]
    if facts.metrics is not None:
        lines += metrics_table(facts.metrics)
        lines.append("")
    runner = facts.runner or {}
    if runner:
        parts = [f"runner `{runner.get('name', '?')}`"]
        if "replicas" in runner and "gpus_per_replica" in runner:
            parts.append(f"{runner['replicas']} x {runner['gpus_per_replica']} GPUs")
        if "kv_cache_tokens" in runner:
            parts.append(f"KV cache {int(float(runner['kv_cache_tokens'])):,} tokens per replica")
        if "trial_seconds" in runner:
            parts.append(f"~{float(runner['trial_seconds']):,.0f} s of GPU time")
        lines += ["; ".join(parts), ""]
        if facts.provenance:  # the calibration it names includes any carried-over GPU
            lines += [f"_{facts.provenance}_", ""]
        elif runner.get("name") == "sim":
            lines += ["_Simulated engine: numbers are model estimates, not measurements._", ""]
            if facts.efficiency_note:
                lines += [f"_{facts.efficiency_note}_", ""]
    if facts.constraints:
        broken = {k: v for k, v in facts.constraints.items() if v > 0}
        if broken:
            text = ", ".join(f"`{k}` (over by {v:,.1f})" for k, v in broken.items())
            lines += [f"**Infeasible**: breaks {text}; left out of the front.", ""]
        else:
            lines += ["Meets every SLO.", ""]
    if facts.crash_class:
        rejected = facts.crash_class.startswith("rejected:")
        what = "Rejected before launch (no runner time)" if rejected else "Crashed"
        phase = f" during {facts.crash_phase}" if facts.crash_phase else ""
        lines += [
            f"**{what}**: `{facts.crash_class}`{phase}",
            "",
            "```",
            facts.crash_message,
            "```",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


# --- artifacts -----------------------------------------------------------------------------


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 256 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) + "\n"


def _upload(
    store: FileSystemArtifactStore, trial: optuna.Trial, path: Path, mimetype: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        upload_artifact(
            artifact_store=store,
            file_path=str(path),
            study_or_trial=trial,
            mimetype=mimetype,
            encoding="utf-8",
        )


def attach_files(trial: optuna.Trial, outcome: TrialOutcome) -> list[str]:
    """Upload the files the runner brought (``benchmark_json``, the tail of ``engine_log``,
    ``launch``); returns the uploaded file names."""
    store = artifact_store(study_dir(trial.study.study_name, storage_url(trial.storage)))
    given = dict(outcome.artifacts)
    uploaded: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trial-artifacts-") as tmp:
        staging = Path(tmp)
        files: list[tuple[Path, str]] = []
        bench = given.get("benchmark_json")
        if bench is not None and Path(bench).is_file():
            files.append((Path(bench), "application/json"))
        log = given.get("engine_log")
        if log is not None and Path(log).is_file():
            path = staging / f"trial-{trial.number}-engine-log-tail.txt"
            path.write_text(log_tail(Path(log)))
            files.append((path, "text/plain"))
        launch = given.get("launch")
        if launch is not None and Path(launch).is_file():
            files.append((Path(launch), "application/json"))
        for path, mimetype in files:
            _upload(store, trial, path, mimetype)
            uploaded.append(path.name)
    return uploaded


__all__ = [
    "NoteFacts",
    "artifact_store",
    "attach_files",
    "note_body",
    "study_dir",
    "write_note",
]

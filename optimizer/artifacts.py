"""What each trial carries into optuna-dashboard: a Markdown note and files in an artifact store.

Place in the data flow: `optimizer.record` builds the note (`note_body`, `write_note`) and
uploads the files (`attach_files`) when it records a trial, before `study.tell` (Optuna accepts
trial artifacts only while the trial runs). A note holds the serve command, the key metrics
and the crash class; artifacts are the benchmark JSON (`vllm bench serve` keys) and the engine
log tail. A real run (LocalRunner) brings its own files; for the simulator this module writes
an aggregate-only benchmark JSON and a short log in the engine's format, both marked as
simulated. Files live in an Optuna `FileSystemArtifactStore` under ``<study dir>/artifacts``,
where the study dir sits next to a SQLite file (``studies/<name>.db`` -> ``studies/<name>/``)
or under ``studies/<name>/`` for other storages; `python -m optimizer.dashboard` serves it.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.storages import BaseStorage, RDBStorage

from optimizer.storage import STUDIES_DIR
from runners.bench.results import aggregate_fields
from runners.engines import resolve
from runners.types import (
    Candidate,
    Metrics,
    NodeGroup,
    ServingConfig,
    TrialOutcome,
)

LOG_TAIL_LINES = 400
NOTE_CHUNK = 2045  # optuna-dashboard splits notes into study system attributes of this size
SIMULATED_MARK = "SIMULATED"


def storage_url(storage: BaseStorage) -> str | None:
    """The database URL behind `storage` (Optuna wraps RDBStorage in a cache layer)."""
    backend = getattr(storage, "_backend", storage)
    return str(backend.url) if isinstance(backend, RDBStorage) else None


def study_dir(study_name: str, url: str | None) -> Path:
    """Where a study's artifacts and report live: beside its SQLite file, else studies/<name>."""
    if url is not None and url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
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
        if runner.get("name") == "sim":
            lines += ["_Simulated engine: numbers are model estimates, not measurements._", ""]
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


def bench_document(
    metrics: Metrics, model_id: str, request_rate: float, max_concurrency: int | None
) -> dict[str, object]:
    """The aggregate keys of `vllm bench serve --save-result` (no per-request arrays)."""
    doc: dict[str, object] = {
        "simulated": True,
        "note": "written by serving-optimizer from the simulated engine's records; "
        "aggregates only, no engine process ran",
        "date": time.strftime("%Y%m%d-%H%M%S"),
        "backend": "serving-optimizer-sim",
        "model_id": model_id,
        "num_prompts": metrics.completed + metrics.failed,
        "request_rate": "inf" if math.isinf(request_rate) else request_rate,
        "max_concurrency": max_concurrency,
        **aggregate_fields(metrics),
    }
    return doc


def simulated_log(
    candidate: Candidate,
    node_group: NodeGroup,
    serve_command: str,
    outcome: TrialOutcome,
) -> str:
    """A few lines in the engine's log format from what the simulator knows, marked simulated."""
    stamp = time.strftime("%m-%d %H:%M:%S")
    diag = dict(outcome.diagnostics)
    resolved = resolve(candidate, node_group)
    config = resolved if isinstance(resolved, ServingConfig) else None
    lines = [
        f"# {SIMULATED_MARK} engine log: written by serving-optimizer from the simulator "
        "(runners.sim); no engine process ran.",
        "# Lines follow the engine's log format; numbers are model estimates.",
    ]
    if candidate.engine == "vllm":
        info = f"INFO {stamp} [{SIMULATED_MARK.lower()}]"
        error = f"ERROR {stamp} [{SIMULATED_MARK.lower()}]"
    elif candidate.engine == "sglang":
        info = error = f"[20{time.strftime('%y-%m-%d %H:%M:%S')} TP0]"
    else:
        info, error = "[TensorRT-LLM][INFO]", "[TensorRT-LLM][ERROR]"
    lines.append(f"{info} command: {serve_command}")
    kv = int(diag.get("kv_cache_tokens", 0))
    if kv > 0:
        if candidate.engine == "vllm":
            lines.append(f"{info} GPU KV cache size: {kv:,} tokens")
            if config is not None:
                lines.append(
                    f"{info} Maximum concurrency for {config.max_model_len:,} tokens per "
                    f"request: {kv / config.max_model_len:.2f}x"
                )
        elif candidate.engine == "sglang":
            lines.append(f"{info} KV Cache is allocated. #tokens: {kv}")
            if config is not None:
                lines.append(
                    f"{info} max_total_num_tokens={kv}, chunked_prefill_size="
                    f"{config.max_num_batched_tokens}, max_running_requests="
                    f"{config.max_num_seqs}, context_len={config.max_model_len}"
                )
        else:
            lines.append(f"{info} Allocated paged KV cache for {kv} tokens")
    if "replicas" in diag:
        lines.append(
            f"{info} {int(diag['replicas'])} replica(s), {int(diag.get('gpus_used', 0))} GPUs; "
            f"{int(diag.get('engine_steps', 0)):,} engine steps, "
            f"{int(diag.get('preemptions', 0)):,} preemptions, "
            f"up to {int(diag.get('max_running', 0)):,} running requests"
        )
    if outcome.crash is not None:
        lines.append(f"{error} {outcome.crash.message}")
    elif outcome.metrics is not None:
        m = outcome.metrics
        lines.append(
            f"{info} benchmark finished: {m.completed} requests in {m.duration_s:,.1f} s, "
            f"{m.output_throughput_tok_s:,.1f} output tok/s"
        )
    return "\n".join(lines) + "\n"


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


def attach_files(
    trial: optuna.Trial,
    candidate: Candidate,
    node_group: NodeGroup,
    serve_command: str,
    outcome: TrialOutcome,
    workload_rate: float,
    workload_concurrency: int | None,
) -> list[str]:
    """Upload the trial's benchmark JSON and engine log tail; returns the uploaded file names.

    Uses a runner's own files when it brought them (``benchmark_json``, ``engine_log``),
    else writes the simulated equivalents.
    """
    store = artifact_store(study_dir(trial.study.study_name, storage_url(trial.storage)))
    given = dict(outcome.artifacts)
    uploaded: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trial-artifacts-") as tmp:
        staging = Path(tmp)
        files: list[tuple[Path, str]] = []
        bench = given.get("benchmark_json")
        if bench is not None and Path(bench).is_file():
            files.append((Path(bench), "application/json"))
        elif outcome.metrics is not None:
            path = staging / f"trial-{trial.number}-bench.json"
            doc = bench_document(
                outcome.metrics, candidate.checkpoint, workload_rate, workload_concurrency
            )
            path.write_text(json.dumps(doc, indent=1))
            files.append((path, "application/json"))
        log = given.get("engine_log")
        if log is not None and Path(log).is_file():
            path = staging / f"trial-{trial.number}-engine-log-tail.txt"
            path.write_text(log_tail(Path(log)))
            files.append((path, "text/plain"))
        elif not outcome.artifacts:
            path = staging / f"trial-{trial.number}-engine-log-simulated.txt"
            path.write_text(simulated_log(candidate, node_group, serve_command, outcome))
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
    "bench_document",
    "note_body",
    "simulated_log",
    "study_dir",
    "write_note",
]

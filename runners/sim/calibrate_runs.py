"""Measured runs for calibration: a replay-schema CSV or a folder of `vllm bench` results.

Place in the data flow: ``python -m runners.sim.calibrate`` calls `read_runs`, which turns
every run into a `runners.sim.fit.Observation` through the replay path
(`runners.sim.replay_rows.load_case`: model resolver, engine registry, adapter defaults), or
stops at the first unusable run with one `CalibrationError` naming the file and the row.

A CSV row is one run in the calibration CSV schema (docs/calibration.md); its ``outcome``
column says ``ok`` or ``crash`` (a crash has no metrics). A folder holds
``vllm bench serve --save-result`` JSON files. A benchmark result does not say what served it,
so each JSON carries its serve command and hardware, either as keys of its own (what
``vllm bench serve --metadata serve_command="vllm serve ..." gpu=H100-SXM-80GB`` adds) or, for
the serve command alone, in a sibling file of the same name ending in ``.cmd``. Keys a JSON
may carry: ``serve_command`` (required, or the ``.cmd`` file), ``gpu`` (required),
``engine`` (default: read from the serve command's program), ``engine_version`` (default: the
newest catalogued), ``num_gpus`` (default: what the flags need), ``dataset`` (required:
``random`` or ``sharegpt``), ``input_len`` and ``output_len`` (required for ``random``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shlex
from collections.abc import Mapping
from pathlib import Path

from runners.catalog import resolve_checkpoint
from runners.engines import engine_names, get_entry
from runners.errors import CalibrationError, ServingOptimizerError
from runners.sim.fit import Observation
from runners.sim.replay_rows import load_case
from runners.types import Distribution, Metrics

BENCH_KEYS = ("completed", "duration", "total_token_throughput", "mean_ttft_ms", "model_id")
"""Keys every `vllm bench serve --save-result` file has."""
STATS = ("mean", "median", "std", "p90", "p95", "p99")
LATENCIES = ("ttft", "tpot", "itl", "e2el")


def input_sha256(path: Path) -> str:
    """The sha256 of a file, or of a folder's JSON and .cmd files (names and bytes, sorted)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted([*path.glob("*.json"), *path.glob("*.cmd")])
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _float(row: Mapping[str, str], key: str) -> float:
    text = (row.get(key) or "").strip()
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def row_metrics(row: Mapping[str, str]) -> Metrics | None:
    """The metrics a CSV-schema row measured (None: it has no total token throughput)."""
    throughput = _float(row, "total_token_throughput")
    if not math.isfinite(throughput) or throughput <= 0:
        return None

    def distribution(name: str) -> Distribution:
        return Distribution(**{stat: _float(row, f"{name}_{stat}_ms") for stat in STATS})

    def count(key: str) -> int:
        value = _float(row, key)
        return int(value) if math.isfinite(value) else 0

    return Metrics(
        completed=count("successful_requests"),
        failed=count("failed_requests"),
        duration_s=_float(row, "duration_s"),
        total_input_tokens=count("total_input_tokens"),
        total_output_tokens=count("total_output_tokens"),
        request_throughput_req_s=_float(row, "request_throughput"),
        output_throughput_tok_s=_float(row, "output_throughput"),
        total_token_throughput_tok_s=throughput,
        num_gpus=count("num_gpus_used"),
        ttft_ms=distribution("ttft"),
        tpot_ms=distribution("tpot"),
        itl_ms=distribution("itl"),
        e2el_ms=distribution("e2el"),
    )


def _observation(
    row: Mapping[str, str], where: str, model: str | None, models_dir: Path | None
) -> Observation:
    for column in ("serve_command", "config_desc"):
        try:
            shlex.split(row.get(column) or "")
        except ValueError as exc:
            raise CalibrationError(
                f"{where}: {column}: cannot be parsed ({exc}); fix its quoting"
            ) from None
    case = load_case(row, models_dir)
    if case.error:
        raise CalibrationError(f"{where}: the run cannot be simulated: {case.error}")
    crashed = (row.get("outcome") or "ok").strip().lower() != "ok"
    if case.crash is not None or case.config is None or case.workload is None:
        reason = case.crash.message if case.crash else "no configuration"
        raise CalibrationError(
            f"{where}: the engine would refuse these settings ({reason}); fix the serve "
            "command or the flags of this run"
        )
    if model is not None:
        wanted = resolve_checkpoint(model, models_dir=models_dir).model.name
        if case.config.model.name != wanted:
            raise CalibrationError(
                f"{where}: a run of {case.config.model.name}, not of {wanted} (--model); "
                "calibrate one model at a time, or remove this run"
            )
    metrics = None if crashed else row_metrics(row)
    if not crashed and metrics is None:
        raise CalibrationError(
            f"{where}: outcome ok but no total_token_throughput; give the measured value or "
            "set outcome to crash"
        )
    return Observation(case.config, case.workload, metrics, where)


def _csv_observations(path: Path, model: str | None, models_dir: Path | None) -> list[Observation]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        _observation(row, f"{path} row {index}", model, models_dir)
        for index, row in enumerate(rows, start=1)
    ]


def _engine_of(command: str, where: str) -> str:
    """The engine whose own command line `command` is (its registry entry's command line)."""
    argv = shlex.split(command)
    for name in engine_names():
        line = get_entry(name).command_line
        if line is not None and line.rest(argv) is not None:
            return name
    raise CalibrationError(
        f"{where}: serve_command: cannot tell the engine from {command!r}; add an engine key"
    )


def json_row(path: Path) -> dict[str, str]:
    """A `vllm bench serve --save-result` file as a row of the CSV schema."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{path}: not a vllm bench result (not JSON: {exc})") from None
    if not isinstance(raw, dict):
        raise CalibrationError(f"{path}: not a vllm bench result (not a JSON object)")
    missing = [key for key in BENCH_KEYS if key not in raw]
    if missing:
        raise CalibrationError(
            f"{path}: not a vllm bench serve --save-result file (no {', '.join(missing)})"
        )
    sibling = path.with_suffix(".cmd")
    command = str(raw.get("serve_command") or "")
    if not command and sibling.is_file():
        command = sibling.read_text(encoding="utf-8").strip()
    if not command:
        raise CalibrationError(
            f"{path}: serve_command: missing; add it to the JSON (vllm bench serve --metadata "
            f"serve_command=...) or write it to {sibling.name}"
        )
    for key in ("gpu", "dataset"):
        if not raw.get(key):
            raise CalibrationError(
                f"{path}: {key}: missing; add it (vllm bench serve --metadata {key}=...)"
            )
    try:
        engine = str(raw.get("engine") or _engine_of(command, str(path)))
    except ValueError as exc:
        raise CalibrationError(
            f"{path}: serve_command: cannot be parsed ({exc}); fix its quoting"
        ) from None
    completed = float(raw["completed"])
    row = {
        "run_id": path.stem,
        "model": str(raw["model_id"]),
        "gpu": str(raw["gpu"]),
        "engine": engine,
        "engine_version": str(raw.get("engine_version") or ""),
        "serve_command": command,
        "num_gpus_used": str(raw.get("num_gpus") or ""),
        "dataset": str(raw["dataset"]),
        "input_len": str(raw.get("input_len") or ""),
        "output_len": str(raw.get("output_len") or ""),
        "num_prompts": str(raw.get("num_prompts") or int(completed)),
        "request_rate": str(raw.get("request_rate") if raw.get("request_rate") else "inf"),
        "max_concurrency": str(raw.get("max_concurrency") or ""),
        "successful_requests": str(int(completed)),
        "failed_requests": str(raw.get("failed") or 0),
        "duration_s": str(raw["duration"]),
        "outcome": "ok",
    }
    for key in ("total_input_tokens", "total_output_tokens", "request_throughput"):
        row[key] = str(raw.get(key, ""))
    row["output_throughput"] = str(raw.get("output_throughput", ""))
    row["total_token_throughput"] = str(raw["total_token_throughput"])
    for name in LATENCIES:
        for stat in STATS:
            row[f"{name}_{stat}_ms"] = str(raw.get(f"{stat}_{name}_ms", ""))
    return row


def read_runs(path: Path, model: str | None, models_dir: Path | None) -> list[Observation]:
    """Every run of a CSV file or a folder of bench JSON files; `CalibrationError` at the first
    that cannot be used."""
    if not path.exists():
        raise CalibrationError(f"{path}: no such file or folder")
    try:
        if path.is_file():
            observations = _csv_observations(path, model, models_dir)
        else:
            files = sorted(path.glob("*.json"))
            if not files:
                raise CalibrationError(f"{path}: no *.json bench results in this folder")
            observations = [
                _observation(json_row(file), str(file), model, models_dir) for file in files
            ]
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot be read: {exc.strerror}") from None
    except ServingOptimizerError as exc:
        if isinstance(exc, CalibrationError):
            raise
        raise CalibrationError(f"{path}: {exc}") from None
    if not observations:
        raise CalibrationError(f"{path}: no runs in it; give at least one measured run")
    return observations


__all__ = ["input_sha256", "json_row", "read_runs", "row_metrics"]

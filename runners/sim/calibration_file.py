"""The calibration file: a fit from measured runs, written by one tool and read by the others.

Place in the data flow: ``python -m runners.sim.calibrate`` fits `runners.sim.fit` corrections
on a user's runs and writes them with `write_calibration`; replay (``--calibration FILE``), the
space file (``simulator: {calibration: FILE}``), the simulated runner and validate read them
with `load_calibration`, which refuses a poor fit unless the caller accepts it explicitly. The
format is documented in docs/calibration.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runners.engines import engine_names
from runners.errors import CalibrationError, CatalogError
from runners.sim.fit import FACTORS, CalibrationFit, applied_calibration

FORMAT = "serving-optimizer-calibration/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FactorModel(_Strict):
    factor: float = Field(gt=0.0)
    log_sigma: float = Field(ge=0.0)


class EngineModel(_Strict):
    gpus: list[str] = Field(min_length=1)
    prediction_log_sigma: float | None = Field(default=None, ge=0.0)
    compute_efficiency: FactorModel
    memory_bandwidth_efficiency: FactorModel
    step_overhead: FactorModel
    usable_memory: FactorModel


class ErrorModel(_Strict):
    median: float = Field(ge=0.0)
    max: float = Field(ge=0.0)


class InputModel(_Strict):
    path: str
    sha256: str = Field(min_length=64, max_length=64)


class CalibrationFileModel(_Strict):
    format: Literal["serving-optimizer-calibration/1"]
    model: str | None = None
    input: InputModel
    base: str
    quality: Literal["good", "poor"]
    quality_reason: str
    runs: list[str] = Field(min_length=1)
    engines: dict[str, EngineModel] = Field(min_length=1)
    error: dict[str, ErrorModel]


def calibration_document(
    fit: CalibrationFit,
    gpus: dict[str, list[str]],
    labels: list[str],
    source: str,
    sha256: str,
    model: str | None,
) -> dict[str, object]:
    """The YAML document of `fit` (plain data, in the file's key order)."""
    engines: dict[str, object] = {}
    for engine, names in gpus.items():
        entry: dict[str, object] = {"gpus": list(names)}
        if engine in fit.spread:
            entry["prediction_log_sigma"] = round(fit.spread[engine], 4)
        for factor in FACTORS:
            value, sigma = fit.corrections[f"{engine}.{factor}"]
            entry[factor] = {"factor": round(value, 4), "log_sigma": round(sigma, 4)}
        engines[engine] = entry
    return {
        "format": FORMAT,
        "model": model,
        "input": {"path": source, "sha256": sha256},
        "base": "shipped calibration",
        "quality": "poor" if fit.poor else "good",
        "quality_reason": fit.note,
        "runs": list(labels),
        "engines": engines,
        "error": {
            metric: {"median": round(fit.error[metric], 4), "max": round(fit.max_error[metric], 4)}
            for metric in fit.error
        },
    }


def write_calibration(path: Path, document: dict[str, object]) -> None:
    """Write the document whole (to a temporary file first, so nothing half-written stays)."""
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def load_calibration(path: str | Path, accept_poor_fit: bool = False) -> CalibrationFit:
    """Read a calibration file; `CalibrationError` naming the file, the field and the fix."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationError(f"{path}: the calibration cannot be read: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: not a valid YAML calibration file: {exc}") from None
    if not isinstance(raw, dict):
        raise CalibrationError(
            f"{path}: not a calibration file (write one with python -m runners.sim.calibrate)"
        )
    try:
        model = CalibrationFileModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise CalibrationError(
            f"{path}: {where}: {first['msg']} (rewrite it with python -m runners.sim.calibrate)"
        ) from None
    for name in model.engines:
        if name not in engine_names():
            raise CalibrationError(
                f"{path}: engines.{name}: unknown engine; use one of {', '.join(engine_names())}"
            )
    if model.quality == "poor" and not accept_poor_fit:
        raise CalibrationError(
            f"{path}: quality: poor ({model.quality_reason}); calibrate on better runs, or "
            "accept it explicitly (accept_poor_fit: true in the space file, --accept-poor-fit "
            "on the command line)"
        )
    corrections = {
        f"{engine}.{factor}": (
            getattr(entry, factor).factor,
            getattr(entry, factor).log_sigma,
        )
        for engine, entry in model.engines.items()
        for factor in FACTORS
    }
    gpus = {engine: list(entry.gpus) for engine, entry in model.engines.items()}
    try:
        calibration = applied_calibration(corrections, gpus)
    except CatalogError as exc:
        raise CalibrationError(f"{path}: engines: {exc}") from None
    error = {m: e.median for m, e in model.error.items() if math.isfinite(e.median)}
    return CalibrationFit(
        corrections=corrections,
        calibration=calibration,
        n_runs=len(model.runs),
        error=error,
        max_error={m: e.max for m, e in model.error.items()},
        poor=model.quality == "poor",
        note=model.quality_reason,
        spread={
            engine: entry.prediction_log_sigma
            for engine, entry in model.engines.items()
            if entry.prediction_log_sigma is not None
        },
    )


__all__ = ["FORMAT", "calibration_document", "load_calibration", "write_calibration"]

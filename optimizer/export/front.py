"""The Pareto front of a study as JSON and CSV, with every metric the study recorded.

Place in the data flow: `optimizer.export.cli` reads the study through `optimizer.record` and
writes ``front.json`` and ``front.csv``. One row per feasible Pareto point (highest throughput
first) and the baseline (marked ``on_front: false`` when it is not on the front): trial number,
which one is recommended (`optimizer.recommend`), engine and release, checkpoint dtype, the
runner that produced the numbers (``sim`` numbers are simulated, not measured), the instance
shape, the space's two objectives, each SLO's value and whether it is met, every `vllm bench
serve` metric key the trial holds, the serve command and the settings.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import optuna

from optimizer.adoption import best_own_trials
from optimizer.recommend import recommended
from optimizer.record import TrialRecord, baseline_record, read
from optimizer.space import candidate_from_params
from optimizer.spec.models import Slo, StudySpec
from runners.types import SettingValue


@dataclass(frozen=True)
class SloValue:
    name: str
    value: float
    met: bool


@dataclass(frozen=True)
class FrontRow:
    record: TrialRecord
    on_front: bool
    recommended: bool
    engine_version: str
    settings: dict[str, SettingValue]
    slos: tuple[SloValue, ...]

    @property
    def runner(self) -> str:
        return self.record.runner.name if self.record.runner is not None else "unknown"


def front_rows(study: optuna.Study, spec: StudySpec) -> list[FrontRow]:
    """The front (highest throughput first), then the baseline if it is not on it."""
    front = sorted(
        (read(t) for t in best_own_trials(study)), key=lambda r: (-r.throughput, r.number)
    )
    chosen = recommended(study)
    records = list(front)
    on_front = {r.number for r in front}
    base = baseline_record(study)
    if base is not None and base.number not in on_front:
        records.append(base)
    rows = []
    for record in records:
        candidate = candidate_from_params(spec, record.params)
        rows.append(
            FrontRow(
                record=record,
                on_front=record.number in on_front,
                recommended=chosen is not None and record.number == chosen.number,
                engine_version=candidate.engine_version,
                settings=candidate.settings_dict(),
                slos=_slo_values(record, spec.objectives.slos),
            )
        )
    return rows


def _slo_values(record: TrialRecord, slos: Sequence[Slo]) -> tuple[SloValue, ...]:
    """Each SLO's metric value, from the stored constraint (value - max, or min - value)."""
    stored = record.constraints or {}
    out = []
    for slo in slos:
        if slo.name not in stored:
            continue
        c = stored[slo.name]
        value = c + slo.max if slo.max is not None else (slo.min or 0.0) - c
        out.append(SloValue(slo.name, value, c <= 0))
    return tuple(out)


def front_json(study_name: str, spec: StudySpec, rows: Sequence[FrontRow]) -> str:
    tput, lat = spec.objectives.throughput.label, spec.objectives.latency.label
    document = {
        "study": study_name,
        "model": spec.model.name,
        "node_group": _group(spec),
        "workload": spec.workload.name,
        "objectives": {tput: "maximize", lat: "minimize"},
        "slos": [slo.name for slo in spec.objectives.slos],
        "points": [_point(row, tput, lat) for row in rows],
    }
    return json.dumps(document, indent=2) + "\n"


def _group(spec: StudySpec) -> str:
    group = spec.node_group
    return f"{group.name}: {group.nodes} x {group.gpus_per_node} x {group.gpu}"


def _point(row: FrontRow, tput: str, lat: str) -> dict[str, object]:
    record = row.record
    shape = record.shape
    return {
        "trial": record.number,
        "on_front": row.on_front,
        "recommended": row.recommended,
        "baseline": record.baseline,
        "engine": record.engine,
        "engine_version": row.engine_version,
        "weight_dtype": record.weight_dtype,
        "runner": row.runner,
        "objectives": {tput: record.throughput, lat: record.latency},
        "slos": {s.name: {"value": s.value, "met": s.met} for s in row.slos},
        "replicas": shape.replicas if shape is not None else None,
        "gpus_per_replica": shape.gpus_per_replica if shape is not None else None,
        "serve_command": record.serve_command,
        "settings": row.settings,
        "metrics": dict(record.metrics or {}),
    }


def front_csv(spec: StudySpec, rows: Sequence[FrontRow]) -> str:
    tput, lat = spec.objectives.throughput.label, spec.objectives.latency.label
    metric_keys: list[str] = []
    for row in rows:
        metric_keys += [k for k in (row.record.metrics or {}) if k not in metric_keys]
    slo_names = [slo.name for slo in spec.objectives.slos]
    header = [
        "trial", "on_front", "recommended", "baseline", "engine", "engine_version",
        "weight_dtype", "runner", "replicas", "gpus_per_replica", tput, lat,
        *(f"slo: {name}" for name in slo_names), "slos_met", *metric_keys, "serve_command",
        "settings",
    ]  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        record = row.record
        shape = record.shape
        slos = {s.name: s for s in row.slos}
        metrics = record.metrics or {}
        writer.writerow(
            [
                record.number, row.on_front, row.recommended, record.baseline, record.engine,
                row.engine_version, record.weight_dtype, row.runner,
                shape.replicas if shape is not None else "",
                shape.gpus_per_replica if shape is not None else "",
                record.throughput, record.latency,
                *(slos[name].value if name in slos else "" for name in slo_names),
                all(s.met for s in row.slos), *(metrics.get(k, "") for k in metric_keys),
                record.serve_command, json.dumps(row.settings, sort_keys=True),
            ]
        )  # fmt: skip
    return out.getvalue()

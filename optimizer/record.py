"""The trial record: what a study stores about each trial, written at tell, read by all after.

Place in the data flow: the loop hands each finished trial to `tell_outcome` (the runner's
`TrialOutcome` of a resolved candidate), `tell_rejected` (pre-flight's verdict) or `tell_lost`
(a worker died); they write the user attributes, the dashboard note and the artifact files, and
tell Optuna with the trial's objective values (`optimizer.objectives.trial_values`: goodput at
the knee, several workloads combined; each workload and load curve stored by
`optimizer.workload_runs`). `read` turns a stored trial back into a typed `TrialRecord` for
the report, validation, pre-flight's crash history, warm start and the dashboard; the keys are
those of every earlier study, so old studies still read (their runner info may lack the
instance shape, which then reads as unknown). This is the only module that touches Optuna internals
(`_storage`, `_trial_id`, `_study_id`, the legacy ``constraints`` system attribute).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from optimizer.adoption import own_trials
from optimizer.artifacts import (
    NoteFacts,
    attach_files,
    note_body,
    storage_url,
    study_dir,
    write_note,
)
from optimizer.objectives import TrialValues, trial_values
from optimizer.provenance import KIND_KEY, Kind, Provenance, trial_kind
from optimizer.space import VARIANT_PARAM
from optimizer.spec.models import StudySpec
from optimizer.workload_runs import WORKLOAD_RUNS, StoredRun, read_runs, stored_runs
from runners.catalog import get_gpu
from runners.engines import Resolved
from runners.launch import started_command
from runners.pool import Finished
from runners.sim.params import efficiency_note
from runners.types import SettingValue, TrialOutcome

# user attributes (the storage keys of every study so far)
ENGINE = "engine"
SERVE_COMMAND = "serve_command"  # the plain engine command, for the target machine
LAUNCH_COMMAND = "launch_command"  # what a real trial started, as it ran there
RUNNER = "runner"
ARTIFACTS = "artifacts"
METRICS = "metrics"
HEADLINE_METRICS = ("output_throughput_tok_s", "p99_ttft_ms", "p99_tpot_ms", "p99_e2el_ms")
CRASH_CLASS = "crash_class"
CRASH_MESSAGE = "crash_message"
CRASH_PHASE = "crash_phase"
CRASH_PROBABILITY = "crash_probability"
PLACEMENT = "placement"
WORKER_FAULT = "worker_fault"
# marks set when a trial is enqueued
BASELINE = "baseline"
ANCHOR = "anchor"
WARM_START = "warm_start_from"
GRID = "grid"
# optuna-dashboard 0.21 reads SLO feasibility only from this system attribute
LEGACY_CONSTRAINTS = "constraints"

REJECTED_PREFIX = "rejected:"
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class InstanceShape:
    """How a trial was deployed: `replicas` engine instances of `gpus_per_replica` GPUs."""

    replicas: int
    gpus_per_replica: int

    def __str__(self) -> str:
        return f"{self.replicas} x {self.gpus_per_replica} GPUs"


@dataclass(frozen=True)
class RunnerInfo:
    """Which runner ran the trial, its wall time, and what it reported (`diagnostics`)."""

    name: str
    wall_s: float
    diagnostics: Mapping[str, float]
    shape: InstanceShape | None
    numbers: Kind | None = None
    """simulated, emulated or measured (`optimizer.provenance`)."""

    def value(self, key: str, default: float = 0.0) -> float:
        return float(self.diagnostics.get(key, default))


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the study recorded it. Empty strings and None mean "not recorded"."""

    number: int
    state: TrialState
    params: Mapping[str, SettingValue]
    values: tuple[float, ...] | None
    engine: str
    weight_dtype: str
    serve_command: str
    launch_command: str = ""
    baseline: bool = False
    anchor: str | None = None
    warm_start_from: str | None = None
    grid: bool = False
    metrics: Mapping[str, float] | None = None
    runner: RunnerInfo | None = None
    placement: Mapping[str, object] | None = None
    crash_class: str = ""
    crash_message: str = ""
    crash_phase: str = ""
    crash_probability: float | None = None
    artifacts: Mapping[str, str] | None = None
    constraints: Mapping[str, float] | None = None
    worker_fault: str = ""
    workload_runs: tuple[StoredRun, ...] = ()
    """Each workload of the trial and its load curve (goodput, several workloads)."""

    @property
    def shape(self) -> InstanceShape | None:
        return self.runner.shape if self.runner is not None else None

    @property
    def placement_text(self) -> str:
        return str(self.shape) if self.shape is not None else "unknown"

    @property
    def is_rejection(self) -> bool:
        return self.crash_class.startswith(REJECTED_PREFIX)

    @property
    def is_runner_crash(self) -> bool:
        return self.state == TrialState.PRUNED and not self.is_rejection

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in (self.constraints or {}).values())

    @property
    def throughput(self) -> float:
        assert self.values is not None, f"trial {self.number} has no objective values"
        return self.values[0]

    @property
    def latency(self) -> float:
        assert self.values is not None, f"trial {self.number} has no objective values"
        return self.values[1]


# --- reading -------------------------------------------------------------------------------


def crash_class_of(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get(CRASH_CLASS, ""))


def is_rejection(trial: FrozenTrial) -> bool:
    """Pre-flight rejected it: PRUNED without any runner time."""
    return crash_class_of(trial).startswith(REJECTED_PREFIX)


def is_runner_crash(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.PRUNED and not is_rejection(trial)


def read(trial: FrozenTrial) -> TrialRecord:
    """The typed record of a stored trial (any study this project ever wrote)."""
    attrs = trial.user_attrs
    metrics = attrs.get(METRICS)
    artifacts = attrs.get(ARTIFACTS)
    placement = attrs.get(PLACEMENT)
    probability = attrs.get(CRASH_PROBABILITY)
    anchor = attrs.get(ANCHOR)
    warm = attrs.get(WARM_START)
    return TrialRecord(
        number=trial.number,
        state=trial.state,
        params=dict(trial.params),
        values=tuple(trial.values) if trial.values else None,
        engine=str(attrs.get(ENGINE, trial.params.get("engine", "?"))),
        weight_dtype=str(trial.params.get(VARIANT_PARAM, "?")),
        serve_command=str(attrs.get(SERVE_COMMAND, "")),
        launch_command=str(attrs.get(LAUNCH_COMMAND, "")),
        baseline=bool(attrs.get(BASELINE)),
        anchor=str(anchor) if anchor is not None else None,
        warm_start_from=str(warm) if warm is not None else None,
        grid=bool(attrs.get(GRID)),
        metrics={str(k): float(v) for k, v in metrics.items()}
        if isinstance(metrics, dict)
        else None,
        runner=_runner_info(attrs.get(RUNNER)),
        placement=dict(placement) if isinstance(placement, dict) else None,
        crash_class=crash_class_of(trial),
        crash_message=str(attrs.get(CRASH_MESSAGE, "")),
        crash_phase=str(attrs.get(CRASH_PHASE, "")),
        crash_probability=float(probability) if probability is not None else None,
        artifacts={str(k): str(v) for k, v in artifacts.items()}
        if isinstance(artifacts, dict)
        else None,
        constraints={str(k): float(v) for k, v in trial.constraints.items()} or None,
        worker_fault=str(attrs.get(WORKER_FAULT, "")),
        workload_runs=read_runs(attrs.get(WORKLOAD_RUNS)),
    )


def _runner_info(raw: object) -> RunnerInfo | None:
    if not isinstance(raw, dict):
        return None
    diagnostics = {
        str(k): float(v)
        for k, v in raw.items()
        if k not in ("name", "wall_s") and isinstance(v, int | float)
    }
    name = str(raw.get("name", "?"))
    return RunnerInfo(
        name=name,
        wall_s=float(raw.get("wall_s", 0.0)),
        diagnostics=diagnostics,
        shape=_shape(diagnostics),
        numbers=trial_kind(name, str(raw.get(KIND_KEY, ""))),
    )


def _shape(diagnostics: Mapping[str, float]) -> InstanceShape | None:
    """The instance shape the runner reported; studies before `gpus_per_replica` was recorded
    have it only from the simulator (`replicas` and `gpus_used`)."""
    replicas = int(diagnostics.get("replicas", 0))
    if replicas < 1:
        return None
    if "gpus_per_replica" in diagnostics:
        return InstanceShape(replicas, int(diagnostics["gpus_per_replica"]))
    if "gpus_used" in diagnostics:
        return InstanceShape(replicas, int(diagnostics["gpus_used"]) // replicas)
    return None


def read_all(study: optuna.Study, states: Sequence[TrialState] | None = None) -> list[TrialRecord]:
    """This tool's trials (adopted ones left out: `optimizer.adoption`)."""
    return [read(t) for t in own_trials(study, states)]


def baseline_record(study: optuna.Study) -> TrialRecord | None:
    """The completed engine-defaults trial, if there is one."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get(BASELINE):
            return read(trial)
    return None


@dataclass(frozen=True)
class Counts:
    """Trials by what they cost. `finished` counts trials that reached the runner (COMPLETE,
    or PRUNED by a crash); pre-flight rejections cost no runner time and are counted apart."""

    finished: int
    rejected: int
    running: int
    waiting: int


def count_trials(study: optuna.Study) -> Counts:
    trials = own_trials(study)
    done = [t for t in trials if t.state in DONE_STATES]
    rejected = sum(is_rejection(t) for t in done)
    return Counts(
        finished=len(done) - rejected,
        rejected=rejected,
        running=sum(t.state == TrialState.RUNNING for t in trials),
        waiting=sum(t.state == TrialState.WAITING for t in trials),
    )


def has_mark(trials: Iterable[FrozenTrial], mark: str, live_only: bool = False) -> bool:
    """Does any trial carry `mark` (`live_only`: and is finished, waiting or running)?"""
    live = (*DONE_STATES, TrialState.WAITING, TrialState.RUNNING)
    return any(t.user_attrs.get(mark) and (not live_only or t.state in live) for t in trials)


def marks_taken(trials: Iterable[FrozenTrial], mark: str) -> set[str]:
    """The values of `mark` the trials carry (e.g. the warm-start source trials taken)."""
    return {str(t.user_attrs[mark]) for t in trials if mark in t.user_attrs}


# --- where a study lives (Optuna keeps its storage private) --------------------------------


def storage_of(study: optuna.Study) -> BaseStorage:
    return study._storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    return trial._trial_id


def study_url(study: optuna.Study) -> str | None:
    """The database URL of the study's storage (None for in-memory storage)."""
    return storage_url(study._storage)


def study_dir_of(study: optuna.Study) -> Path:
    """Where the study's artifacts and report live (beside its SQLite file, else studies/)."""
    return study_dir(study.study_name, study_url(study))


# --- writing -------------------------------------------------------------------------------


def tell_outcome(
    study: optuna.Study,
    trial: optuna.Trial,
    spec: StudySpec,
    resolved: Resolved,
    outcome: TrialOutcome,
    runner_name: str,
    done: Finished | None = None,
    provenance: Provenance | None = None,
) -> None:
    """Record what the runner measured and tell Optuna: COMPLETE with the two objective
    values, PRUNED with the crash, FAIL for an infrastructure fault; with `provenance`, the
    trial's runner record and note say whether its numbers are simulated, emulated or
    measured. Attributes are few and grouped: each one is a storage round trip."""
    if done is not None and done.placement is not None:
        where: dict[str, object] = {
            "node_group": done.placement.node_group.name,
            "gpus": list(done.placement.gpu_ids),
        }
        if done.node:
            where["node"] = done.node[:16]
        trial.set_user_attr(PLACEMENT, where)
    trial.set_user_attr(ENGINE, resolved.candidate.engine)
    trial.set_user_attr(SERVE_COMMAND, resolved.serve_command)
    launched = started_command(outcome)
    if launched:
        trial.set_user_attr(LAUNCH_COMMAND, launched)
    runner_info = _runner_attr(outcome, runner_name)
    if provenance is not None:
        runner_info[KIND_KEY] = provenance.kind
    worth = trial_values(outcome, spec) if outcome.status == "ok" and outcome.metrics else None
    _note_and_files(trial, resolved, outcome, runner_info, launched, worth, provenance)
    trial.set_user_attr(RUNNER, runner_info)
    if outcome.artifacts:
        trial.set_user_attr(ARTIFACTS, dict(outcome.artifacts))
    if worth is not None and outcome.metrics is not None:
        flat = outcome.metrics.flat()
        trial.set_user_attr(METRICS, flat)
        for key in HEADLINE_METRICS:
            trial.set_user_attr(key, flat[key])
        if outcome.workloads:
            trial.set_user_attr(WORKLOAD_RUNS, stored_runs(outcome, worth, spec.objectives))
        constraints = worth.constraints
        if constraints:
            for name, value in constraints.items():
                trial.set_constraint(name, value)
            study._storage.set_trial_system_attr(
                trial._trial_id, LEGACY_CONSTRAINTS, list(constraints.values())
            )
        study.tell(trial, list(worth.values))
    elif outcome.status == "crashed" and outcome.crash is not None:
        trial.set_user_attr(CRASH_CLASS, str(outcome.crash.crash_class))
        trial.set_user_attr(CRASH_MESSAGE, outcome.crash.message)
        trial.set_user_attr(CRASH_PHASE, outcome.crash.phase)
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


def _runner_attr(outcome: TrialOutcome, runner_name: str) -> dict[str, float | str]:
    """Runner name, wall time, its diagnostics, and the instance shape it reported."""
    info: dict[str, float | str] = {"name": runner_name, "wall_s": round(outcome.wall_s, 4)}
    for key, value in outcome.diagnostics:
        info[key] = int(value) if float(value).is_integer() else value
    if outcome.replicas > 0:
        info["replicas"] = outcome.replicas
        info["gpus_per_replica"] = outcome.gpus_per_replica
    return info


def _note_and_files(
    trial: optuna.Trial,
    resolved: Resolved,
    outcome: TrialOutcome,
    runner_info: Mapping[str, float | str],
    launched: str,
    worth: TrialValues | None,
    provenance: Provenance | None,
) -> None:
    """The dashboard note and the artifact files of a trial that reached the runner."""
    if outcome.status not in ("ok", "crashed"):
        return  # an infrastructure fault is retried; the retry gets the note
    metrics = outcome.metrics if outcome.status == "ok" else None
    crash = outcome.crash if outcome.status == "crashed" else None
    facts = NoteFacts(
        engine=resolved.candidate.engine,
        weight_dtype=resolved.candidate.weight_dtype,
        serve_command=resolved.serve_command,
        launch_command=launched,
        state="COMPLETE" if metrics is not None else "PRUNED",
        baseline=bool(trial.user_attrs.get(BASELINE)),
        metrics=metrics.flat() if metrics is not None else None,
        runner=runner_info,
        crash_class=str(crash.crash_class) if crash else "",
        crash_message=crash.message if crash else "",
        crash_phase=crash.phase if crash else "",
        constraints=worth.constraints if worth is not None and metrics else None,
        efficiency_note=efficiency_note(get_gpu(resolved.node_group.gpu)),
        provenance=provenance.sentence if provenance is not None else "",
    )
    try:
        write_note(trial.storage, trial.study._study_id, trial._trial_id, note_body(facts))
        attach_files(trial, outcome)
    except OSError as exc:  # a full disk must not lose the trial itself
        print(f"warning: trial {trial.number}: artifacts not stored: {exc}", file=sys.stderr)


def tell_rejected(
    study: optuna.Study,
    trial: optuna.Trial,
    resolved: Resolved,
    crash_class: str,
    message: str,
    probability: float | None,
) -> None:
    """A candidate pre-flight predicted to crash: PRUNED, no runner time spent."""
    candidate = resolved.candidate
    trial.set_user_attr(ENGINE, candidate.engine)
    trial.set_user_attr(SERVE_COMMAND, resolved.serve_command)
    facts = NoteFacts(
        engine=candidate.engine,
        weight_dtype=candidate.weight_dtype,
        serve_command=resolved.serve_command,
        state="PRUNED",
        crash_class=crash_class,
        crash_message=message,
    )
    write_note(trial.storage, trial.study._study_id, trial._trial_id, note_body(facts))
    trial.set_user_attr(CRASH_CLASS, crash_class)
    trial.set_user_attr(CRASH_MESSAGE, message)
    if probability is not None:
        trial.set_user_attr(CRASH_PROBABILITY, round(probability, 3))
    study.tell(trial, state=TrialState.PRUNED)


def note_crash_odds(trial: optuna.Trial, probability: float | None) -> None:
    """The crash probability pre-flight gave a candidate it launched (a real runner near the
    memory boundary): stored so that the outcome can be set against it."""
    if probability is not None and probability > 0.0:
        trial.set_user_attr(CRASH_PROBABILITY, round(probability, 3))


def tell_lost(study: optuna.Study, storage: BaseStorage, trial: optuna.Trial, fault: str) -> None:
    """A worker lost mid-trial (actor or node died): FAIL the trial and enqueue its parameters
    again through `storage`'s heartbeat retry callback, as for a trial whose driver died (same
    retry limit and lineage attributes). Call it under `optimizer.storage.trial_slot`."""
    trial.set_user_attr(WORKER_FAULT, fault)
    study.tell(trial, state=TrialState.FAIL)
    _retry(study, storage, trial, drop=WORKER_FAULT)


def tell_failed(study: optuna.Study, storage: BaseStorage, trials: Iterable[optuna.Trial]) -> None:
    """FAIL trials this driver asked for and has not told (interrupted or broken driver), and
    enqueue each again so the next run retries it: anchors and the baseline keep their marks."""
    for trial in trials:
        try:
            study.tell(trial, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # already told
            continue
        with contextlib.suppress(RuntimeError, ValueError):
            _retry(study, storage, trial)


def _retry(study: optuna.Study, storage: BaseStorage, trial: optuna.Trial, drop: str = "") -> None:
    """Enqueue a FAILed trial again through the heartbeat retry callback (its retry limit and
    lineage), without the user attribute `drop` that belongs to the failed attempt only."""
    if isinstance(storage, RDBStorage):
        callback = storage.get_heartbeat_stale_trial_callback()
        if callback is not None:
            frozen = storage.get_trial(trial._trial_id)
            frozen.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k != drop}
            callback(study, frozen)

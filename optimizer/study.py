"""`python -m optimizer.study --space X.yaml`: the ask/tell driver of one multi-objective study.

Data flow: space file -> `load_spec` (exit 2 on any problem, before storage is touched) ->
storage (SQLite under studies/ by default) -> baseline enqueued once -> for each remaining
trial: `space.suggest` -> pre-flight -> a trial pool (`InlinePool`: one at a time in this
process; `RayPool` with `--runner ray`: as many at once as the node groups' free GPUs allow)
-> `tell` as each completes (COMPLETE with two values, PRUNED with a crash class, FAIL for
infrastructure faults) -> one progress line -> at the end the Pareto table.
`--n-trials` is the total the study should hold: rerunning the command resumes and only runs
what is missing. This process is the only writer of the study.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from optimizer.anchors import ANCHOR_ATTR, engine_default_anchors
from optimizer.artifacts import record_outcome, record_rejection
from optimizer.feasibility import FeasibilityChecker, Verdict, is_rejection
from optimizer.objectives import constraint_values, metric_names, objective_values
from optimizer.report import format_pareto, pareto_points, write_report
from optimizer.samplers import SAMPLERS, GridPlan, make_sampler
from optimizer.space import baseline_params, suggest
from optimizer.spec import SamplerName, StudySpec, load_spec
from optimizer.storage import (
    DEFAULT_GRACE_S,
    DEFAULT_HEARTBEAT_S,
    Heartbeat,
    StudyError,
    default_storage_url,
    fail_stale_trials,
    load_or_create,
    open_storage,
    redact,
    trial_slot,
)
from optimizer.warmstart import enqueue_warm_start
from runners import Runner
from runners.engines import candidate_minimal_settings, serve_command
from runners.errors import ServingOptimizerError
from runners.pool import Finished, InlinePool, TrialPool
from runners.types import Candidate, TrialOutcome

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_INFEASIBLE = 3
EXIT_WORKERS_LOST = 1
MAX_REJECTIONS_IN_A_ROW = 200
MAX_LOST_IN_A_ROW = 10
FAULT_KEY = "worker_fault"
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
LEGACY_CONSTRAINTS_KEY = "constraints"


@dataclass(frozen=True)
class Options:
    space: str
    n_trials: int | None
    storage: str | None
    study_name: str | None
    sampler: SamplerName | None
    seed: int | None
    quiet: bool
    runner: str = "sim"
    heartbeat_s: int = DEFAULT_HEARTBEAT_S
    grace_s: int = DEFAULT_GRACE_S
    warm_start: str | None = None
    preflight: bool = True
    allow_space_change: bool = False
    anchors: bool = True
    ray_address: str | None = None
    ray_worker: str = "sim"


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m optimizer.study",
        description="Search for the best serving configuration of an LLM deployment.",
        epilog="Example: python -m optimizer.study --space qwen3-moe.yaml --n-trials 50",
    )
    parser.add_argument(
        "--space", required=True, help="space file, or the name of one in search_spaces/"
    )
    parser.add_argument(
        "--n-trials",
        type=_positive_int,
        help="total trials that reach the runner (completed or crashed) the study should hold; "
        "candidates rejected by pre-flight checks cost no runner time and come on top "
        "(default: the file's search.n_trials)",
    )
    parser.add_argument(
        "--storage", help="Optuna storage URL (default: sqlite:///studies/<study-name>.db)"
    )
    parser.add_argument("--study-name", help="study name (default: the space file's name)")
    parser.add_argument("--sampler", choices=SAMPLERS, help="default: the file's search.sampler")
    parser.add_argument("--seed", type=int, help="sampler seed (default: the file's search.seed)")
    parser.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    parser.add_argument(
        "--runner",
        choices=["sim", "local", "ray"],
        default="sim",
        help="sim: the embedded simulated engine (default); local: start the real engine "
        "on this machine for every trial; ray: as many trials at once as the node groups' "
        "free GPUs allow, one Ray actor per trial (running --ray-worker)",
    )
    parser.add_argument(
        "--ray-address",
        help="with --runner ray: join this Ray cluster (auto, ray://host:10001, ...) instead "
        "of starting an embedded local Ray",
    )
    parser.add_argument(
        "--ray-worker",
        choices=["sim", "local"],
        default="sim",
        help="with --runner ray: what each trial's actor runs (default %(default)s)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=_positive_int,
        default=DEFAULT_HEARTBEAT_S,
        help="seconds between heartbeats of a running trial (default %(default)s)",
    )
    parser.add_argument(
        "--grace-period",
        type=_positive_int,
        default=DEFAULT_GRACE_S,
        help="seconds without a heartbeat after which a trial is failed and retried "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--warm-start",
        metavar="STUDY",
        help="re-evaluate the Pareto configurations of another study in the same storage "
        "(or STORAGE_URL#STUDY) first",
    )
    parser.add_argument(
        "--no-anchors",
        action="store_true",
        help="do not start with each engine's defaults per checkpoint (after the baseline)",
    )
    parser.add_argument(
        "--allow-space-change",
        action="store_true",
        help="continue a study whose space file changed since it was created",
    )
    parser.add_argument(
        "--no-preflight",
        action="store_true",
        help="launch every candidate, even those pre-flight checks predict will crash",
    )
    ns = parser.parse_args(argv)
    return Options(
        space=ns.space,
        n_trials=ns.n_trials,
        storage=ns.storage,
        study_name=ns.study_name,
        sampler=ns.sampler,
        seed=ns.seed,
        quiet=ns.quiet,
        runner=ns.runner,
        heartbeat_s=ns.heartbeat_interval,
        grace_s=ns.grace_period,
        warm_start=ns.warm_start,
        preflight=not ns.no_preflight,
        allow_space_change=ns.allow_space_change,
        anchors=not ns.no_anchors,
        ray_address=ns.ray_address,
        ray_worker=ns.ray_worker,
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def make_runner(name: str = "sim", study_name: str = "study") -> Runner:
    """The runner named on the command line; imported only when used."""
    from optimizer.storage import STUDIES_DIR

    # absolute: a Ray actor's working directory is not the driver's
    trials = Path(STUDIES_DIR / study_name / "trials").resolve()
    if name == "local":
        from runners.local import LocalRunner

        return LocalRunner(artifacts_dir=trials)
    from runners.sim.runner import SimRunner

    return SimRunner(artifacts_dir=trials)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        spec = load_spec(options.space)
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if options.runner == "ray":
            return _run_on_ray(spec, options)
        if options.ray_address is not None:
            print("error: --ray-address needs --runner ray", file=sys.stderr)
            return EXIT_USAGE
        runner = make_runner(options.runner, options.study_name or spec.name)
        return run_study(spec, options, runner)
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


@dataclass(frozen=True)
class Counts:
    """Trials by what they cost. `finished` counts trials that reached the runner (COMPLETE,
    or PRUNED by a crash); pre-flight rejections cost no runner time and are counted apart."""

    finished: int
    rejected: int
    running: int
    waiting: int


def count_trials(study: optuna.Study) -> Counts:
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in DONE_STATES]
    rejected = sum(is_rejection(t) for t in done)
    return Counts(
        finished=len(done) - rejected,
        rejected=rejected,
        running=sum(t.state == TrialState.RUNNING for t in trials),
        waiting=sum(t.state == TrialState.WAITING for t in trials),
    )


def _run_on_ray(spec: StudySpec, options: Options) -> int:
    """`--runner ray`: the same study, with a `RayPool` of the space file's node groups."""
    from runners.ray_pool import RayNodeGroup, RayPool, ray_cluster

    groups = [
        RayNodeGroup(group, section.resource, section.label)
        for group, section in zip(spec.node_groups, spec.hardware.node_groups, strict=True)
    ]
    worker = make_runner(options.ray_worker, options.study_name or spec.name)
    with ray_cluster(groups, options.ray_address) as description:
        pool = RayPool(groups, worker, spec.hardware.fill_node_group)
        sizes = ", ".join(f"{name} {cap.gpus} GPUs" for name, cap in pool.capacity.items())
        print(f"Runner: {description}; trials placed on {sizes}.", flush=True)
        try:
            return run_study(spec, options, pool)
        finally:
            pool.release_all()


@dataclass(frozen=True)
class _InFlight:
    """A trial this driver asked for and has not told yet, with its heartbeat."""

    trial: optuna.Trial
    heartbeat: contextlib.ExitStack[bool | None] = field(compare=False)
    candidate: Candidate | None = None


def run_study(
    spec: StudySpec,
    options: Options,
    runner: Runner | TrialPool,
    storage: optuna.storages.BaseStorage | None = None,
) -> int:
    """Run the study until it holds the requested number of finished trials.

    Cooperative: any number of drivers may run this on one storage. Each counts finished and
    running trials and asks for a new one under `trial_slot`, so together they stop at exactly
    the total; a driver that finds only other drivers' trials running waits for them (failing
    and retrying stale ones) instead of overshooting.

    Trials in flight: a plain `Runner` is wrapped in an `InlinePool` (one trial at a time, run
    in this thread); a `TrialPool` such as `RayPool` keeps as many in flight as it has room
    for. Either way this driver asks (under the lock), suggests and pre-flights, submits, and
    tells as trials complete; each trial in flight has its own heartbeat. A worker lost
    mid-trial is failed and retried with the same parameters; Ctrl-C fails every trial in
    flight (exit 130), any other exception too (and propagates).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_name = options.study_name or spec.name
    url = options.storage or default_storage_url(study_name)
    total = options.n_trials or spec.search.n_trials
    if storage is None:
        storage = open_storage(url, options.heartbeat_s, options.grace_s)
    sampler_name: SamplerName = options.sampler or spec.search.sampler
    existing = _finished_count(storage, study_name)
    seed = (options.seed if options.seed is not None else spec.search.seed) + existing
    study = load_or_create(storage, study_name, make_sampler(sampler_name, seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metric_names(spec.objectives))
    _record_study_attrs(study, spec, options.allow_space_change)
    with trial_slot(storage, study_name):
        if options.warm_start:
            enqueue_warm_start(study, spec, options.warm_start, storage)
        _enqueue_baseline(study, spec)
        if options.anchors:
            _enqueue_anchors(study, spec)
    grid = GridPlan(spec, seed) if sampler_name == "grid" else None
    checker = FeasibilityChecker(spec) if options.preflight else None
    pool = _as_pool(runner, spec)
    workload = spec.workload_spec
    counts = count_trials(study)
    print(
        f"Study {study_name!r} in {redact(url)}: {counts.finished} trials finished, running "
        f"{max(0, total - counts.finished)} more (target {total}; sampler {sampler_name}).",
        flush=True,
    )
    poll_s = min(2.0, options.heartbeat_s / 2)
    in_flight: dict[int, _InFlight] = {}  # by trial number: submitted to the pool
    starting: list[_InFlight] = []  # asked, not yet submitted or rejected
    rejected_in_a_row = 0
    lost_in_a_row = 0
    try:
        while True:
            stop = _stop_reason(rejected_in_a_row, lost_in_a_row)
            if stop is not None and not in_flight:
                print(stop[0], file=sys.stderr)
                return stop[1]
            trial = None
            if stop is None and pool.has_room():
                with trial_slot(storage, study_name):
                    fail_stale_trials(study)
                    counts = count_trials(study)
                    if counts.finished + counts.running < total:
                        if grid is not None and counts.waiting == 0:
                            _enqueue_grid_point(study, grid)
                        trial = _ask(study)
                if trial is None and not in_flight:
                    if counts.finished >= total:
                        break
                    time.sleep(poll_s)  # other drivers' trials in flight
                    continue
            if trial is not None:
                beat = contextlib.ExitStack()
                beat.enter_context(Heartbeat(storage, trial._trial_id))
                starting.append(_InFlight(trial, beat))
                candidate = suggest(trial, spec)
                verdict = (
                    checker.check(
                        candidate,
                        trial.params,
                        trial.distributions,
                        study.get_trials(deepcopy=False),
                    )
                    if checker is not None
                    else None
                )
                if verdict is not None and not verdict.launch:
                    _tell_rejected(study, trial, spec, candidate, verdict)
                    starting.clear()
                    beat.close()
                    rejected_in_a_row += 1
                    _print_progress(study, options, total, trial, candidate, spec, None, verdict)
                else:
                    rejected_in_a_row = 0
                    in_flight[trial.number] = _InFlight(trial, beat, candidate)
                    starting.clear()
                    pool.submit(trial.number, candidate, workload)
                continue
            for done in pool.wait(poll_s):
                flight = in_flight[done.key]
                assert flight.candidate is not None
                if done.outcome is None:
                    _fail_and_retry(study, storage, study_name, flight.trial, done.fault)
                    lost_in_a_row += 1
                else:
                    lost_in_a_row = 0
                    _record_placement(flight.trial, done)
                    _tell(
                        study, flight.trial, spec, flight.candidate, done.outcome, options.runner
                    )
                del in_flight[done.key]
                flight.heartbeat.close()
                _print_progress(
                    study, options, total, flight.trial, flight.candidate, spec, done, None
                )
    except KeyboardInterrupt:
        _fail_in_flight(study, [*starting, *in_flight.values()])
        pool.release_all()
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException:
        _fail_in_flight(study, [*starting, *in_flight.values()])
        pool.release_all()
        raise

    print()
    print(format_pareto(pareto_points(study), spec))
    _write_report(study, url, options.storage is not None)
    return 0


def _write_report(study: optuna.Study, url: str, custom_storage: bool) -> None:
    """End-of-study hook: report.md/html and plots beside the study (optimizer.report)."""
    try:
        files = write_report(study)
    except (OSError, ImportError, ValueError) as exc:  # the study itself is complete
        print(f"warning: report not written: {exc}", file=sys.stderr)
    else:
        print(f"\nReport: {files.markdown} (and report.html, {files.pareto_png})")
    where = f" --storage {redact(url)}" if custom_storage else ""
    print(f"Browse it: python -m optimizer.dashboard {study.study_name}{where}")


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # heartbeats outside Study.optimize
        return study.ask()


def _as_pool(runner: Runner | TrialPool, spec: StudySpec) -> TrialPool:
    if isinstance(runner, TrialPool):
        return runner
    return InlinePool(runner, spec.node_group, spec.hardware.fill_node_group)


def _stop_reason(rejected_in_a_row: int, lost_in_a_row: int) -> tuple[str, int] | None:
    """Why this driver must stop asking for trials (message, exit status), if it must."""
    if rejected_in_a_row >= MAX_REJECTIONS_IN_A_ROW:
        return (
            f"error: pre-flight rejected {rejected_in_a_row} candidates in a row; the space "
            "is (nearly) all infeasible for this model and hardware. See the rejected "
            "trials' crash_message, narrow the space, or pass --no-preflight.",
            EXIT_INFEASIBLE,
        )
    if lost_in_a_row >= MAX_LOST_IN_A_ROW:
        return (
            f"error: the workers of {lost_in_a_row} trials in a row were lost (see the failed "
            f"trials' {FAULT_KEY}); check the Ray cluster, then run the same command again.",
            EXIT_WORKERS_LOST,
        )
    return None


def _fail_and_retry(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    study_name: str,
    trial: optuna.Trial,
    fault: str,
) -> None:
    """A worker lost mid-trial (actor or node died): FAIL the trial and enqueue its parameters
    again through the storage's heartbeat retry callback, as for a trial whose driver died
    (same retry limit and lineage attributes)."""
    trial.set_user_attr(FAULT_KEY, fault)
    with trial_slot(storage, study_name):
        study.tell(trial, state=TrialState.FAIL)
        if isinstance(storage, RDBStorage):
            callback = storage.get_heartbeat_stale_trial_callback()
            if callback is not None:
                frozen = storage.get_trial(trial._trial_id)
                frozen.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k != FAULT_KEY}
                callback(study, frozen)


def _fail_in_flight(study: optuna.Study, flights: Sequence[_InFlight]) -> None:
    """FAIL every trial this driver has not told yet and stop their heartbeats."""
    for flight in flights:
        try:
            with contextlib.suppress(RuntimeError, ValueError):  # already told
                study.tell(flight.trial, state=TrialState.FAIL)
        finally:
            flight.heartbeat.close()


def _record_placement(trial: optuna.Trial, done: Finished) -> None:
    if done.placement is None:
        return
    where = {
        "node_group": done.placement.node_group.name,
        "gpus": list(done.placement.gpu_ids),
    }
    if done.node:
        where["node"] = done.node[:16]
    trial.set_user_attr("placement", where)


def _print_progress(
    study: optuna.Study,
    options: Options,
    total: int,
    trial: optuna.Trial,
    candidate: Candidate,
    spec: StudySpec,
    done: Finished | None,
    verdict: Verdict | None,
) -> None:
    if options.quiet:
        return
    position = count_trials(study).finished
    if done is not None and done.outcome is None:
        line = (
            f"[{position:>3}/{total}] trial {trial.number:>3}  FAIL (worker lost: "
            f"{done.fault}); retried with the same parameters"
        )
    else:
        outcome = done.outcome if done is not None else None
        line = _progress_line(trial.number, position, total, outcome, verdict)
    print(f"{line}  | {_describe(candidate, spec)}", flush=True)


def _enqueue_grid_point(study: optuna.Study, grid: GridPlan) -> None:
    point = grid.next_point(t.params for t in study.get_trials(deepcopy=False))
    if point is not None:
        study.enqueue_trial(point, user_attrs={"grid": True})


def _finished_count(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    """All finished trials (rejections included): only used to vary the sampler seed."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return sum(
        1 for t in storage.get_all_trials(study_id, deepcopy=False) if t.state in DONE_STATES
    )


def space_sections(spec: StudySpec) -> dict[str, str]:
    """A short hash per space-file section that changes what trials mean."""
    sections = ("model", "hardware", "engines", "workload", "objectives", "baseline")
    dumped = spec.model_dump(mode="json")
    return {
        name: hashlib.sha256(json.dumps(dumped[name], sort_keys=True).encode()).hexdigest()[:12]
        for name in sections
    }


def _record_study_attrs(study: optuna.Study, spec: StudySpec, allow_change: bool) -> None:
    """Describe the study; refuse to resume it from a space that means something else."""
    sections = space_sections(spec)
    stored = study.user_attrs.get("space_sections")
    if isinstance(stored, dict) and stored != sections and not allow_change:
        changed = ", ".join(sorted(k for k in sections if stored.get(k) != sections[k]))
        raise StudyError(
            f"study {study.study_name!r} was created from a different space file (changed: "
            f"{changed}); its trials would not be comparable. Use another --study-name, or "
            "pass --allow-space-change to continue it anyway"
        )
    attrs = {
        "space": spec.name,
        "space_sections": sections,
        "model": spec.model.name,
        "node_group": f"{spec.node_group.name}: {spec.node_group.gpus_per_node} x "
        f"{spec.node_group.gpu}",
        "workload": f"{spec.workload.name} ({spec.workload.dataset}, "
        f"{spec.workload.num_prompts} prompts)",
        "objectives": metric_names(spec.objectives),
    }
    for key, value in attrs.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def _enqueue_anchors(study: optuna.Study, spec: StudySpec) -> None:
    """Enqueue each engine's defaults per checkpoint (see optimizer.anchors) once per study."""
    if any(ANCHOR_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False)):
        return
    for label, params in engine_default_anchors(spec):
        study.enqueue_trial(params, user_attrs={ANCHOR_ATTR: label})


def _enqueue_baseline(study: optuna.Study, spec: StudySpec) -> None:
    """Enqueue the engine-defaults trial unless the study already holds or awaits it."""
    for trial in study.get_trials(deepcopy=False):
        live = trial.state in (*DONE_STATES, TrialState.WAITING, TrialState.RUNNING)
        if trial.user_attrs.get("baseline") and live:
            return
    study.enqueue_trial(baseline_params(spec), user_attrs={"baseline": True})


HEADLINE_METRICS = ("output_throughput_tok_s", "p99_ttft_ms", "p99_tpot_ms", "p99_e2el_ms")


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    spec: StudySpec,
    candidate: Candidate,
    outcome: TrialOutcome,
    runner_name: str = "sim",
) -> None:
    """Record the outcome. Attributes are few and grouped: each one is a storage round trip."""
    trial.set_user_attr("engine", candidate.engine)
    command = serve_command(candidate, spec.node_group)
    trial.set_user_attr("serve_command", command)
    record_outcome(trial, spec, candidate, outcome, command, runner_name)  # dashboard note+files
    diagnostics = {k: int(v) if float(v).is_integer() else v for k, v in outcome.diagnostics}
    runner_info = {"name": runner_name, "wall_s": round(outcome.wall_s, 4)} | diagnostics
    trial.set_user_attr("runner", runner_info)
    if outcome.artifacts:
        trial.set_user_attr("artifacts", dict(outcome.artifacts))
    if outcome.status == "ok" and outcome.metrics is not None:
        flat = outcome.metrics.flat()
        trial.set_user_attr("metrics", flat)
        for key in HEADLINE_METRICS:
            trial.set_user_attr(key, flat[key])
        constraints = constraint_values(outcome.metrics, spec.objectives.slos)
        if constraints:
            for name, value in constraints.items():
                trial.set_constraint(name, value)
            # optuna-dashboard 0.21 reads only the legacy list attribute
            study._storage.set_trial_system_attr(
                trial._trial_id, LEGACY_CONSTRAINTS_KEY, list(constraints.values())
            )
        study.tell(trial, list(objective_values(outcome.metrics, spec.objectives)))
    elif outcome.status == "crashed" and outcome.crash is not None:
        trial.set_user_attr("crash_class", str(outcome.crash.crash_class))
        trial.set_user_attr("crash_message", outcome.crash.message)
        trial.set_user_attr("crash_phase", outcome.crash.phase)
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


def _tell_rejected(
    study: optuna.Study,
    trial: optuna.Trial,
    spec: StudySpec,
    candidate: Candidate,
    verdict: Verdict,
) -> None:
    """A candidate pre-flight predicted to crash: PRUNED, no runner time spent."""
    trial.set_user_attr("engine", candidate.engine)
    command = serve_command(candidate, spec.node_group)
    trial.set_user_attr("serve_command", command)
    record_rejection(trial, candidate, command, verdict.crash_class, verdict.message)
    trial.set_user_attr("crash_class", verdict.crash_class)
    trial.set_user_attr("crash_message", verdict.message)
    if verdict.crash_probability is not None:
        trial.set_user_attr("crash_probability", round(verdict.crash_probability, 3))
    study.tell(trial, state=TrialState.PRUNED)


def _describe(candidate: Candidate, spec: StudySpec) -> str:
    settings = candidate_minimal_settings(candidate, spec.node_group)
    text = " ".join(f"{k}={v}" for k, v in settings.items()) or "(defaults)"
    full = f"{candidate.engine} {candidate.weight_dtype} {text}"
    return full if len(full) <= 110 else full[:109] + "…"


def _progress_line(
    number: int,
    position: int,
    total: int,
    outcome: TrialOutcome | None,
    verdict: Verdict | None,
) -> str:
    head = f"[{position:>3}/{total}] trial {number:>3}"
    if outcome is None:
        reason = verdict.crash_class if verdict is not None else "rejected"
        return f"{head}  PRUNED {reason} (pre-flight, no runner time)"
    if outcome.status == "ok" and outcome.metrics is not None:
        m = outcome.metrics
        result = (
            f"{m.output_throughput_tok_s:>9,.0f} out tok/s  p99 TPOT {m.tpot_ms.p99:>7.1f} ms  "
            f"p99 TTFT {m.ttft_ms.p99 / 1000:>5.1f} s"
        )
    elif outcome.crash is not None:
        result = f"PRUNED {outcome.crash.crash_class}"
    else:
        result = "FAIL (infrastructure)"
    return f"{head}  {result}"


if __name__ == "__main__":
    raise SystemExit(main())

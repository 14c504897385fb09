"""`python -m optimizer.study --space X.yaml`: the ask/tell driver of one multi-objective study.

Data flow: space file -> `load_spec` (exit 2 on any problem, before storage is touched) ->
storage (SQLite under studies/ by default) -> baseline enqueued once -> for each remaining
trial: `space.suggest` -> runner -> `tell` (COMPLETE with two values, PRUNED with a crash
class, FAIL for infrastructure faults) -> one progress line -> at the end the Pareto table.
`--n-trials` is the total the study should hold: rerunning the command resumes and only runs
what is missing. This process is the only writer of the study.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from optimizer.feasibility import FeasibilityChecker, Verdict, is_rejection
from optimizer.objectives import constraint_values, metric_names, objective_values
from optimizer.report import format_pareto, pareto_points
from optimizer.samplers import SAMPLERS, GridPlan, make_sampler
from optimizer.space import baseline_params, suggest
from optimizer.spec import SamplerName, StudySpec, load_spec
from optimizer.storage import (
    DEFAULT_GRACE_S,
    DEFAULT_HEARTBEAT_S,
    Heartbeat,
    default_storage_url,
    fail_stale_trials,
    load_or_create,
    open_storage,
    trial_slot,
)
from optimizer.warmstart import enqueue_warm_start
from runners import Runner
from runners.engines import candidate_minimal_settings, serve_command
from runners.errors import ServingOptimizerError
from runners.types import Candidate, Placement, TrialOutcome

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_INFEASIBLE = 3
MAX_REJECTIONS_IN_A_ROW = 200
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
        choices=["sim", "local"],
        default="sim",
        help="sim: the embedded simulated engine (default); local: start the real engine "
        "on this machine for every trial",
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
    if name == "local":
        from optimizer.storage import STUDIES_DIR
        from runners.local import LocalRunner

        return LocalRunner(artifacts_dir=STUDIES_DIR / study_name / "trials")
    from runners.sim.runner import SimRunner

    return SimRunner()


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        spec = load_spec(options.space)
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
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


def run_study(
    spec: StudySpec,
    options: Options,
    runner: Runner,
    storage: optuna.storages.BaseStorage | None = None,
) -> int:
    """Run the study until it holds the requested number of finished trials.

    Cooperative: any number of drivers may run this on one storage. Each counts finished and
    running trials and asks for a new one under `trial_slot`, so together they stop at exactly
    the total; a driver that finds only other drivers' trials running waits for them (failing
    and retrying stale ones) instead of overshooting.
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
    _record_study_attrs(study, spec)
    with trial_slot(storage, study_name):
        if options.warm_start:
            enqueue_warm_start(study, spec, options.warm_start, storage)
        _enqueue_baseline(study, spec)
    grid = GridPlan(spec, seed) if sampler_name == "grid" else None
    checker = FeasibilityChecker(spec) if options.preflight else None
    node_group = spec.node_group
    placement = Placement(node_group, tuple(range(node_group.gpus_per_node)))
    workload = spec.workload_spec
    counts = count_trials(study)
    print(
        f"Study {study_name!r} in {url}: {counts.finished} trials finished, running "
        f"{max(0, total - counts.finished)} more (target {total}; sampler {sampler_name}).",
        flush=True,
    )
    rejected_in_a_row = 0
    while True:
        if rejected_in_a_row >= MAX_REJECTIONS_IN_A_ROW:
            print(
                f"error: pre-flight rejected {rejected_in_a_row} candidates in a row; the space "
                "is (nearly) all infeasible for this model and hardware. See the rejected "
                "trials' crash_message, narrow the space, or pass --no-preflight.",
                file=sys.stderr,
            )
            return EXIT_INFEASIBLE
        with trial_slot(storage, study_name):
            fail_stale_trials(study)
            counts = count_trials(study)
            trial = None
            if counts.finished + counts.running < total:
                if grid is not None and counts.waiting == 0:
                    _enqueue_grid_point(study, grid)
                trial = _ask(study)
        if trial is None:
            if counts.finished >= total:
                break
            time.sleep(min(2.0, options.heartbeat_s / 2))  # other drivers' trials in flight
            continue
        try:
            with Heartbeat(storage, trial._trial_id):
                candidate = suggest(trial, spec)
                verdict = (
                    checker.check(candidate, trial.params, trial.distributions, study.trials)
                    if checker is not None
                    else None
                )
                if verdict is not None and not verdict.launch:
                    _tell_rejected(study, trial, spec, candidate, verdict)
                    outcome = None
                    rejected_in_a_row += 1
                else:
                    rejected_in_a_row = 0
                    outcome = runner.run(candidate, workload, placement)
                    _tell(study, trial, spec, candidate, outcome, options.runner)
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            print("\ninterrupted; run the same command again to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        if not options.quiet:
            position = count_trials(study).finished
            line = _progress_line(trial.number, position, total, outcome, verdict)
            print(f"{line}  | {_describe(candidate, spec)}", flush=True)

    print()
    print(format_pareto(pareto_points(study), spec))
    print(f"\nBrowse it: optuna-dashboard {url}")
    return 0


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # heartbeats outside Study.optimize
        return study.ask()


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


def _record_study_attrs(study: optuna.Study, spec: StudySpec) -> None:
    attrs = {
        "space": spec.name,
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
    trial.set_user_attr("serve_command", serve_command(candidate, spec.node_group))
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
    trial.set_user_attr("serve_command", serve_command(candidate, spec.node_group))
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

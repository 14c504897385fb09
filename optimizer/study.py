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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from optimizer.objectives import metric_names, objective_values
from optimizer.report import format_pareto, pareto_points
from optimizer.space import baseline_params, suggest
from optimizer.spec import StudySpec, load_spec
from optimizer.storage import default_storage_url, load_or_create, open_storage
from runners import Runner
from runners.catalog import get_gpu, get_model
from runners.engines import get_engine, minimal_settings, serve_command
from runners.errors import ServingOptimizerError
from runners.types import Candidate, Placement, TrialOutcome

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Options:
    space: str
    n_trials: int | None
    storage: str | None
    study_name: str | None
    sampler: str | None
    seed: int | None
    quiet: bool
    runner: str = "sim"


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
        help="total finished trials the study should hold (default: the file's search.n_trials)",
    )
    parser.add_argument(
        "--storage", help="Optuna storage URL (default: sqlite:///studies/<study-name>.db)"
    )
    parser.add_argument("--study-name", help="study name (default: the space file's name)")
    parser.add_argument(
        "--sampler", choices=["tpe", "random"], help="default: the file's search.sampler"
    )
    parser.add_argument("--seed", type=int, help="sampler seed (default: the file's search.seed)")
    parser.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    ns = parser.parse_args(argv)
    return Options(ns.space, ns.n_trials, ns.storage, ns.study_name, ns.sampler, ns.seed, ns.quiet)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            multivariate=True, group=True, constant_liar=True, seed=seed
        )


def make_runner(name: str = "sim", study_name: str = "study") -> Runner:
    """The runner named on the command line; imported only when used."""
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


def run_study(spec: StudySpec, options: Options, runner: Runner) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_name = options.study_name or spec.name
    url = options.storage or default_storage_url(study_name)
    total = options.n_trials or spec.search.n_trials
    storage = open_storage(url)
    existing = _finished_count(storage, study_name)
    seed = (options.seed if options.seed is not None else spec.search.seed) + existing
    sampler = make_sampler(options.sampler or spec.search.sampler, seed)
    study = load_or_create(storage, study_name, sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metric_names(spec.objectives))
    _record_study_attrs(study, spec)
    _enqueue_baseline(study, spec)

    done = sum(1 for _ in study.get_trials(deepcopy=False, states=DONE_STATES))
    remaining = max(0, total - done)
    node_group = spec.node_group
    placement = Placement(node_group, tuple(range(node_group.gpus_per_node)))
    workload = spec.workload_spec
    print(
        f"Study {study_name!r} in {url}: {done} trials finished, running {remaining} more "
        f"(target {total}).",
        flush=True,
    )
    for _ in range(remaining):
        trial = study.ask()
        try:
            candidate = suggest(trial, spec)
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
            line = _progress_line(trial.number, done + 1, total, outcome)
            print(f"{line}  | {_describe(candidate, spec)}", flush=True)
        done += 1

    print()
    print(format_pareto(pareto_points(study), spec))
    print(f"\nBrowse it: optuna-dashboard {url}")
    return 0


def _finished_count(storage: optuna.storages.BaseStorage, study_name: str) -> int:
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
    if outcome.status == "ok" and outcome.metrics is not None:
        flat = outcome.metrics.flat()
        trial.set_user_attr("metrics", flat)
        for key in HEADLINE_METRICS:
            trial.set_user_attr(key, flat[key])
        study.tell(trial, list(objective_values(outcome.metrics, spec.objectives)))
    elif outcome.status == "crashed" and outcome.crash is not None:
        trial.set_user_attr("crash_class", str(outcome.crash.crash_class))
        trial.set_user_attr("crash_message", outcome.crash.message)
        trial.set_user_attr("crash_phase", outcome.crash.phase)
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


def _describe(candidate: Candidate, spec: StudySpec) -> str:
    adapter = get_engine(candidate.engine)
    model = get_model(candidate.model)
    gpu = get_gpu(spec.node_group.gpu)
    settings = minimal_settings(adapter, candidate.settings_dict(), model, gpu)
    text = " ".join(f"{k}={v}" for k, v in settings.items()) or "(defaults)"
    full = f"{candidate.engine} {candidate.weight_dtype} {text}"
    return full if len(full) <= 110 else full[:109] + "…"


def _progress_line(number: int, position: int, total: int, outcome: TrialOutcome) -> str:
    head = f"[{position:>3}/{total}] trial {number:>3}"
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

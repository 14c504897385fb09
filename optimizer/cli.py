"""The command line of a study: arguments -> `StudyConfig`, the one runner factory, study lookup.

Place in the data flow: first stage. `parse_args` turns ``python -m optimizer.study`` arguments
(and ``serving-optimizer study``'s) into a typed `StudyConfig`, loading the space
file on the way (a bad file exits 2 before any storage is touched); `main` builds the runner
with `make_runner` (also used by validate), checks that every node can run real trials
(`optimizer.readiness`, before anything is stored) and hands both to
`optimizer.loop.run_study`, on an embedded or joined Ray cluster with ``--runner ray``.
`locate` / `open_study` / `spec_for` find a stored study for the commands that work on one
(validate, report, dashboard).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from optimizer.artifacts import study_dir
from optimizer.cli_search import add_search_arguments, positive_int, positive_seconds, stop_rule
from optimizer.config import RunnerChoice, StudyConfig, real_run_settings
from optimizer.copy_paste import command_line
from optimizer.degenerate import workload_warnings
from optimizer.errors import SpecError, StudyError, UsageError
from optimizer.identity import refuse_other_objectives
from optimizer.loop import run_study
from optimizer.paths import check_name
from optimizer.readiness import check_local, ensure_ready, readiness_request
from optimizer.recommend import RULES
from optimizer.redaction import scrub
from optimizer.samplers import SAMPLERS
from optimizer.spec.load import load_spec, resolve_space_path
from optimizer.spec.models import ENV_NAME, StudySpec
from optimizer.sqlite_url import sqlite_file
from optimizer.storage import (
    DEFAULT_GRACE_S,
    DEFAULT_HEARTBEAT_S,
    STUDIES_DIR,
    default_storage_url,
    redact,
)
from optimizer.storage_faults import CAUGHT as STORAGE_CAUGHT
from optimizer.storage_faults import (
    EXIT_STORAGE_FAULT,
    is_storage_fault,
    storage_fault_message,
)
from optimizer.version import add_version_argument
from runners import Runner
from runners.errors import ServingOptimizerError
from runners.local import LocalRunner

EXIT_USAGE = 2
EMULATOR_TIME_SCALE = 5.0
"""``--runner emulator`` default: at 5x the emulator's numbers stay within a few percent of the
simulator's on the main job; at 20x the arrival of 1000 requests at once is spread out."""


def parse_args(argv: Sequence[str] | None) -> StudyConfig:
    """The study configuration of a command line; `SpecError` / `UsageError` when unusable
    (argparse itself exits 2 on malformed arguments)."""
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
        type=positive_int,
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
        choices=["sim", "local", "emulator", "ray"],
        default="sim",
        help="sim: the embedded simulated engine (default); local: start the real engine "
        "on this machine for every trial; emulator: start the engine emulator "
        "(python -m runners.sim.serve, a real HTTP engine) in its place; ray: as many trials "
        "at once as the node groups' free GPUs allow, one Ray actor per trial (running "
        "--ray-worker)",
    )
    add_version_argument(parser)
    add_emulator_arguments(parser)
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
        type=positive_int,
        default=DEFAULT_HEARTBEAT_S,
        help="seconds between heartbeats of a running trial (default %(default)s)",
    )
    parser.add_argument(
        "--grace-period",
        type=positive_int,
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
        "--adopt",
        action="store_true",
        help="accept a study this tool did not make (its trials are kept, described, and "
        "left out of counts, front and report) or made from another space file",
    )
    parser.add_argument(
        "--strict-versions",
        action="store_true",
        help="refuse engine releases outside the catalogue (default: the nearest catalogued "
        "release applies, with a warning naming it)",
    )
    parser.add_argument(
        "--no-preflight",
        action="store_true",
        help="launch every candidate, even those pre-flight checks predict will crash",
    )
    _add_real_run_arguments(parser)
    parser.add_argument(
        "--recommend",
        choices=RULES,
        help="how the configuration to deploy is picked (default: the file's recommendation."
        "rule, else its objectives preset's, else throughput): throughput = within noise of "
        "the best throughput, the lowest latency; latency = within noise of the lowest "
        "latency, the highest throughput; balanced = the most throughput per latency",
    )
    add_search_arguments(parser)
    ns = parser.parse_args(argv)
    if ns.ray_address is not None and ns.runner != "ray":
        raise UsageError("--ray-address needs --runner ray")
    spec = load_spec(ns.space, strict_versions=ns.strict_versions)
    real_run = real_run_settings(
        spec.real_run,
        start_deadline_s=ns.start_deadline,
        bench_timeout_s=ns.bench_timeout,
        offline=ns.offline,
        env=dict(ns.engine_env or []),
        pass_env=ns.pass_env or [],
    )
    emulator = emulator_choice(ns)
    stop = stop_rule(ns)
    return StudyConfig.of(
        spec,
        study_name=ns.study_name,
        storage=ns.storage,
        n_trials=ns.n_trials,
        sampler=ns.sampler,
        seed=ns.seed,
        runner=emulator
        if emulator is not None
        else RunnerChoice(ns.runner, ns.ray_address, ns.ray_worker, real_run=real_run),
        heartbeat_s=ns.heartbeat_interval,
        grace_s=ns.grace_period,
        warm_start=ns.warm_start,
        preflight=not ns.no_preflight,
        anchors=not ns.no_anchors,
        allow_space_change=ns.allow_space_change,
        quiet=ns.quiet,
        recommend=ns.recommend,
        screening=ns.screening == "on",
        screening_candidates=ns.screening_candidates,
        stop=stop,
        adopt=ns.adopt,
    )


def _add_real_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Overrides of the space file's `real_run` section (real engines only)."""
    real = parser.add_argument_group(
        "real engines (--runner local, --ray-worker local; default: the space file's real_run)"
    )
    real.add_argument(
        "--start-deadline",
        type=positive_seconds,
        metavar="SECONDS",
        help="from engine start until its health URL answers 200 (default 600); a large "
        "model's weight load and graph capture can take longer",
    )
    real.add_argument(
        "--bench-timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="for the whole benchmark of one trial, warm-up included (default 1800)",
    )
    real.add_argument(
        "--offline",
        action=argparse.BooleanOptionalAction,
        help="run engines with HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 (default: only "
        "when the model is found only in the node's Hugging Face cache)",
    )
    real.add_argument(
        "--engine-env",
        type=_env_assignment,
        action="append",
        metavar="NAME=VALUE",
        help="set a variable for every engine (repeatable; over the space file's env)",
    )
    real.add_argument(
        "--pass-env",
        type=_env_name,
        action="append",
        metavar="NAME",
        help="copy a variable from this environment to every engine, on every Ray node too "
        "(repeatable)",
    )


def _env_name(text: str) -> str:
    if not re.fullmatch(ENV_NAME, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a variable name (letters, digits and _, not starting with a digit)"
        )
    return text


def _env_assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return _env_name(name), value


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """``--emulator-profile`` and ``--emulator-time-scale`` (with ``--runner emulator``)."""
    parser.add_argument(
        "--emulator-profile",
        metavar="FILE",
        help="with --runner emulator: the truth profile of the emulated engine (how it really "
        "behaves, unknown to the study; docs/emulator-profile.md)",
    )
    parser.add_argument(
        "--emulator-time-scale",
        type=float,
        metavar="X",
        help="with --runner emulator: run the emulated engine X times faster than real time "
        f"(default {EMULATOR_TIME_SCALE:g}; smaller is more faithful, larger is quicker)",
    )


def emulator_choice(ns: argparse.Namespace) -> RunnerChoice | None:
    """The emulator runner of ``--runner emulator`` (None for another runner); its profile is
    read and checked here, before anything is stored."""
    if ns.runner != "emulator":
        if ns.emulator_profile is not None or ns.emulator_time_scale is not None:
            raise UsageError("--emulator-profile and --emulator-time-scale need --runner emulator")
        return None
    scale = ns.emulator_time_scale if ns.emulator_time_scale is not None else EMULATOR_TIME_SCALE
    if not scale > 0:
        raise UsageError(f"--emulator-time-scale must be above 0, got {scale:g}")
    profile = None
    if ns.emulator_profile is not None:
        from runners.sim.profile import load_profile

        profile = Path(ns.emulator_profile)
        load_profile(profile)  # a bad file stops here: exit 2, nothing stored
    return RunnerChoice("emulator", emulator_scale=scale, emulator_profile=profile)


def make_runner(choice: RunnerChoice, artifacts_dir: Path) -> Runner:
    """The one runner factory (study, validate, retune): the simulated engine (with its
    run-to-run noise model when `choice.noise`), or the real engine on this machine, writing its
    files under `artifacts_dir` (or the engine emulator instead of the engine, with its truth
    profile). Runners are imported only when used. With ``ray`` this is the runner each trial's
    actor runs."""
    name = choice.ray_worker if choice.name == "ray" else choice.name
    if name in ("local", "emulator"):
        from runners.local import EmulatorLaunch

        if name == "emulator" and choice.emulator_scale is None:
            raise UsageError("the emulator runner needs a time scale")
        emulator = (
            EmulatorLaunch(
                time_scale=choice.emulator_scale,
                startup_s=0.2,
                profile=choice.emulator_profile,
            )
            if choice.emulator_scale is not None
            else None
        )
        # absolute: a Ray actor's working directory is not the driver's. The runner (with its
        # settings) is what each Ray actor receives, so real trials there run with them too.
        return LocalRunner(artifacts_dir.resolve(), choice.real_run, emulator=emulator)
    if choice.emulator_scale is not None:
        raise UsageError("--emulator needs --runner local")
    from runners.sim import Noise
    from runners.sim.runner import SimRunner

    return SimRunner(
        noise=Noise.typical() if choice.noise else None,
        artifacts_dir=artifacts_dir.resolve(),
        calibration=choice.calibration,
    )


def trials_dir(study_name: str, storage_url: str | None = None) -> Path:
    """Where the study's runner writes each trial's files (engine log, benchmark JSON): the
    ``trials`` folder of the study's own folder (beside its SQLite file, else studies/<name>),
    so a study stored elsewhere keeps its trial files with its report and artifacts."""
    return study_dir(study_name, storage_url) / "trials"


def main(argv: Sequence[str] | None = None) -> int:
    config: StudyConfig | None = None
    try:
        config = parse_args(argv)
        for warning in workload_warnings(config.spec):
            print(f"warning: {warning}", file=sys.stderr)
        runner = make_runner(config.runner, trials_dir(config.study_name, config.storage_url))
        if config.runner.name == "ray":
            return _run_on_ray(config, runner)
        if isinstance(runner, LocalRunner) and config.runner.real_engine:
            check_local(config.spec, runner)  # before anything is stored
        return run_study(config, runner)
    except ServingOptimizerError as exc:
        url = config.storage_url if config is not None else None
        print(f"error: {scrub(str(exc), url)}", file=sys.stderr)
        return EXIT_USAGE
    except STORAGE_CAUGHT as exc:
        if not is_storage_fault(exc):
            raise
        url = config.storage_url if config is not None else None
        print(f"error: {scrub(storage_fault_message(exc), url)}", file=sys.stderr)
        return EXIT_STORAGE_FAULT


def _run_on_ray(config: StudyConfig, worker: Runner) -> int:
    """`--runner ray`: the same study, with a `RayPool` of the space file's node groups; with
    real engines, every node of the groups is checked first (nothing is stored if one fails)."""
    from runners.ray import RayNodeGroup, RayPool, ray_cluster
    from runners.ray.readiness import check_ray_nodes

    spec = config.spec
    groups = [
        RayNodeGroup(group, section.resource, section.label)
        for group, section in zip(spec.node_groups, spec.hardware.node_groups, strict=True)
    ]
    with ray_cluster(groups, config.runner.ray_address) as description:
        if isinstance(worker, LocalRunner) and config.runner.real_engine:
            ensure_ready(check_ray_nodes(groups, readiness_request(spec, worker)))
        pool = RayPool(groups, worker, spec.hardware.fill_node_group)
        sizes = ", ".join(f"{name} {cap.gpus} GPUs" for name, cap in pool.capacity.items())
        print(f"Runner: {description}; trials placed on {sizes}.", flush=True)
        try:
            return run_study(config, pool)
        finally:
            pool.release_all()


# --- a stored study, for validate, report and dashboard -------------------------------------


@dataclass(frozen=True)
class StudyRef:
    """A study named on the command line: its name, storage URL and (if known) space file."""

    name: str
    url: str
    space: Path | None

    @property
    def directory(self) -> Path:
        return study_dir(self.name, self.url)


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every command on a stored study takes; `locate` resolves them."""
    parser.add_argument("study", help="study name (studies/<name>.db) or its space file")
    parser.add_argument("--storage", help="Optuna storage URL (default: studies/<name>.db)")
    parser.add_argument("--study-name", help="study name when it differs from the space's")


def locate(target: str, storage: str | None = None, study_name: str | None = None) -> StudyRef:
    """`target` is a space file (path or shipped name) or a study name under studies/."""
    space: Path | None
    try:
        space = resolve_space_path(target)
        name = study_name or load_spec(space).name
    except SpecError:
        space = None
        name = study_name or Path(target).name.removesuffix(".db")
    name = check_name(name, "--study-name")
    url = storage or default_storage_url(name, STUDIES_DIR)
    return StudyRef(name, url, space)


def open_study(ref: StudyRef, any_objectives: bool = False) -> optuna.Study:
    """The stored study `ref` names; unless `any_objectives`, refused when it does not have
    this tool's two objectives (nothing could read its trials)."""
    database = sqlite_file(ref.url)
    if database is not None and not database.exists():
        raise StudyError(
            f"no study database at {redact(ref.url)}; run "
            f"`{command_line('python', '-m', 'optimizer.study', '--space', ref.name + '.yaml')}` "
            "first, or pass --storage"
        )
    try:
        study = optuna.load_study(study_name=ref.name, storage=ref.url)
    except KeyError:
        raise StudyError(
            f"no study named {ref.name!r} in {redact(ref.url)}; pass --study-name or --storage"
        ) from None
    except Exception as exc:  # sqlalchemy and the database driver raise many types
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StudyError(
            f"cannot open storage {redact(ref.url)!r}: {scrub(first_line, ref.url)}"
        ) from None
    if not any_objectives:
        refuse_other_objectives(study)
    return study


def spec_for(ref: StudyRef, study: optuna.Study) -> StudySpec:
    """The space file of a study: given on the command line, or the shipped one it names."""
    if ref.space is not None:
        return load_spec(ref.space)
    name = str(study.user_attrs.get("space", ref.name))
    try:
        return load_spec(name)
    except SpecError as exc:
        raise StudyError(
            f"study {ref.name!r} was made from space {name!r}, which is not a shipped space "
            f"file; pass the file as the argument ({exc})"
        ) from None

"""Sim-to-real: does the shadow simulator make a real study find the true front sooner?

The "real" engine is the engine emulator under a truth profile (scripts/profiles/*.yaml,
docs/emulator-profile.md) that the study never sees. For each profile, the true front of each
space (scripts/profiles/space-*.yaml: 54 and 1,080 points, and a 96-point goodput space; each
measured on its own) is found exhaustively: every lattice point simulated with the profile's
calibration, noise off, with its load search on the goodput space
(scripts/sim_to_real_truth.py, cached). Then, per
seed, two studies of at most ``--budget`` runner trials each run through the study loop with
``--runner emulator``: screening (the sampler proposes K candidates, the shadow simulator,
refitted after every real trial, picks one) and plain TPE (``--screening off``). Measured:

- real trials until the true values of the configurations tried reach 0.95 of the true
  front's hypervolume, or on the goodput space 0.95 of the true best goodput (median over
  seeds and profiles; a run that never does counts as budget + 1, shown with ">");
- the shadow simulator's median throughput (goodput) error after 3, 5 and 10 real trials of the
  screening run, on the whole lattice: fitted on the first k runner trials, it predicts every
  lattice point, against the profile's truth; and the same for the trials it predicted in the
  study (the stored predictions of trials run after k were fitted);
- the ratio of the medians (screening / plain): the target is <= 0.5.

The bulk runs in process: `SimRunner` with the profile's calibration (no noise) stands in for
the emulator, through the same loop. ``--http`` instead runs seed 0's screening study of
every profile through the real HTTP emulator (``--runner emulator --emulator-profile``, a
process per trial, the profile's noise on) and the same study in process, and prints both
outcomes side by side.

    python scripts/bench_sim_to_real.py [--seeds 5] [--budget 30] [--spaces NAME ...]
    python scripts/bench_sim_to_real.py --http
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim_to_real_truth import Point, Truth, cached_true_front, key, lattice

from optimizer.config import RunnerChoice, StudyConfig
from optimizer.loop import run_study
from optimizer.predicted import error_summary, prediction_rows
from optimizer.record import is_rejection
from optimizer.shadow import ShadowSimulator
from optimizer.space import candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners import Runner
from runners.engines import resolve_candidate
from runners.launch import EmulatorLaunch
from runners.local import LocalRunner
from runners.sim.profile import load_profile
from runners.sim.runner import SimRunner

HERE = Path(__file__).resolve().parent / "profiles"
SPACES = ("space-qwen3-8b-h100", "space-qwen3-32b-h100x4", "space-goodput-qwen3-32b-h100x2")
PROFILES = ("slow-kernels", "host-bound", "fast-tight")
TARGET = 0.95
MILESTONES = (3, 5, 10)
TIME_SCALE = 5.0
ERROR_POINTS = 120
ERROR_POINTS_GOODPUT = 24
STEP = 3


@dataclass(frozen=True)
class Run:
    """One study: its runner trials in order (rejections left out) and what they tell."""

    trials: list[FrozenTrial]
    reached: int | None  # runner trials until TARGET of the true hypervolume (None: never)
    seconds: float


def runner_trials(study: optuna.Study) -> list[FrozenTrial]:
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in done]
    return sorted((t for t in trials if not is_rejection(t)), key=lambda t: t.number)


def trials_to_target(trials: list[FrozenTrial], truth: Truth, goodput: bool) -> int | None:
    """Runner trials until the true values of what was tried reach TARGET of the true front's
    hypervolume (with `goodput`: of the true best goodput)."""
    seen: list[Point] = []
    for count, trial in enumerate(trials, 1):
        value = truth.values.get(key(dict(trial.params)))
        if value is not None:
            seen.append(value)
        if goodput:
            if max((t for t, _ in seen), default=0.0) >= TARGET * truth.best_throughput:
                return count
        elif truth.hv(seen) >= TARGET * truth.hypervolume:
            return count
    return None


def study_config(
    spec: StudySpec, profile: Path, seed: int, budget: int, screening: bool, url: str
) -> StudyConfig:
    """Screening: the emulator runner (its shadow simulator screens). Plain TPE: the same
    trials with the runner choice "sim", which only spares the shadow simulator's refits (it
    does not change what plain TPE samples)."""
    emulator = RunnerChoice("emulator", emulator_scale=TIME_SCALE, emulator_profile=profile)
    return StudyConfig.of(
        spec,
        study_name=f"{profile.stem}-{seed}-{'screen' if screening else 'plain'}",
        storage=url,
        n_trials=budget,
        seed=seed,
        quiet=True,
        runner=emulator if screening else RunnerChoice("sim"),
        screening=screening,
    )


def run_one(
    spec: StudySpec,
    profile: Path,
    truth: Truth,
    seed: int,
    budget: int,
    screening: bool,
    runner: Runner,
    url: str | None = None,
    storage: optuna.storages.BaseStorage | None = None,
) -> Run:
    """A study to `budget` runner trials; a screening run stops early (in steps) once it has
    reached the target and seen the last milestone, since nothing later is measured (it
    checks every STEP trials past the last milestone: each resumption refits the shadow once)."""
    started = time.perf_counter()
    later = range(max(MILESTONES) + STEP, budget, STEP)
    steps = [max(MILESTONES), *later, budget] if screening else [budget]
    study: optuna.Study | None = None
    for n in steps:
        config = study_config(spec, profile, seed, n, screening, url or "sqlite://")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            status = run_study(config, runner, storage)
        if status != 0:
            raise SystemExit(f"{config.study_name}: the study ended with status {status}")
        study = optuna.load_study(study_name=config.study_name, storage=storage or url)
        if trials_to_target(runner_trials(study), truth, is_goodput(spec)) is not None:
            break
    assert study is not None
    trials = runner_trials(study)
    reached = trials_to_target(trials, truth, is_goodput(spec))
    return Run(trials, reached, time.perf_counter() - started)


def is_goodput(spec: StudySpec) -> bool:
    return spec.objectives.goodput is not None


def lattice_errors(spec: StudySpec, trials: list[FrozenTrial], truth: Truth) -> dict[int, float]:
    """After k runner trials: the median |predicted / true - 1| throughput (goodput) over the
    lattice (every point up to ERROR_POINTS of them, ERROR_POINTS_GOODPUT with a goodput
    objective, whose every prediction runs a load search; else an even stride through it,
    the same points for every run). Points whose true goodput is 0 (no load held) have no
    relative error and are left out."""
    points = list(lattice(spec))
    most = ERROR_POINTS_GOODPUT if is_goodput(spec) else ERROR_POINTS
    points = points[:: -(-len(points) // most)]
    out = {}
    for k in MILESTONES:
        if len(trials) < k:
            continue
        shadow = ShadowSimulator(spec)
        shadow.refresh(trials[:k])
        errors = []
        for params in points:
            true = truth.values[key(params)]
            resolved = resolve_candidate(candidate_from_params(spec, params), spec.node_group)
            if true is None or true[0] <= 0.0 or resolved.config is None:
                continue
            predicted = shadow.foretell(resolved.config).throughput
            if predicted is not None:
                errors.append(abs(predicted / true[0] - 1.0))
        out[k] = statistics.median(errors)
    return out


def fmt_trials(n: int | None, budget: int) -> str:
    return str(n) if n is not None else f">{budget}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES))
    parser.add_argument(
        "--spaces",
        nargs="+",
        default=list(SPACES),
        help="space files under scripts/profiles/ (without .yaml); each is measured on its own",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="only the check: seed 0's screening study of each profile over real HTTP, beside "
        "the same study in process",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=TIME_SCALE,
        help="with --http: the emulator's speed-up; lower it when the host's CPU sets the pace "
        "(docs/emulator-profile.md)",
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for name in args.spaces:
        space = HERE / f"{name}.yaml"
        spec = load_spec(space)
        print(
            f"\n=== space {space.name}: {len(list(lattice(spec)))} lattice points; "
            f"budget {args.budget}"
        )
        if args.http:
            for profile in args.profiles:
                path = HERE / f"{profile}.yaml"
                print(f"profile {profile}:")
                truth, _ = cached_true_front(space, path)
                http_check(spec, path, truth, args.budget, args.time_scale)
            continue
        bench_space(spec, space, args.profiles, args.seeds, args.budget)


def bench_space(
    spec: StudySpec, space: Path, profiles: list[str], seeds: int, budget: int
) -> None:
    """Screening against plain TPE on one space, every profile and seed; prints the summary."""
    reached: dict[str, list[int]] = {"screening": [], "plain TPE": []}
    lattice_err: dict[int, list[float]] = {k: [] for k in MILESTONES}
    study_err: dict[int, list[float]] = {k: [] for k in MILESTONES}
    for name in profiles:
        path = HERE / f"{name}.yaml"
        profile = load_profile(path)
        started = time.perf_counter()
        truth, cached = cached_true_front(space, path)
        took = "cached" if cached else f"computed in {time.perf_counter() - started:.0f} s"
        runner = SimRunner(profile=profile)
        best = (
            f"true best goodput {truth.best_throughput:.4g}"
            if is_goodput(spec)
            else f"true hypervolume {truth.hypervolume:.4g}"
        )
        print(f"\nprofile {name}: {best} ({took})")
        for seed in range(seeds):
            line = [f"  seed {seed}:"]
            for label, screening in (("screening", True), ("plain TPE", False)):
                run = run_one(
                    spec, path, truth, seed, budget, screening, runner, None, InMemoryStorage()
                )
                reached[label].append(run.reached if run.reached is not None else budget + 1)
                line.append(
                    f"{label} {fmt_trials(run.reached, budget):>3} trials ({run.seconds:.0f} s)"
                )
                if screening:
                    errors = lattice_errors(spec, run.trials, truth)
                    for k, e in errors.items():
                        lattice_err[k].append(e)
                    stats = {s.label: s for s in error_summary(prediction_rows(run.trials))}
                    for k in MILESTONES:
                        s = stats.get(f"after {k} real trials")
                        if s is not None and s.throughput_median is not None:
                            study_err[k].append(s.throughput_median)
                    line.append(
                        "lattice error "
                        + " ".join(f"@{k} {100 * e:.1f}%" for k, e in errors.items())
                    )
            print("; ".join(line), flush=True)
    print(f"\nsummary over profiles x seeds ({space.name})")
    med = {label: statistics.median(v) for label, v in reached.items()}
    target = "best goodput" if is_goodput(spec) else "hypervolume"
    metric = "goodput" if is_goodput(spec) else "throughput"
    for label, values in reached.items():
        print(
            f"  {label:10s} trials to {TARGET} of the true {target}: median {med[label]:g} "
            f"(each: {values})"
        )
    print(
        f"  ratio screening / plain TPE: {med['screening'] / med['plain TPE']:.2f} "
        "(target <= 0.50)"
    )
    for k in MILESTONES:
        lat, inn = _median_pct(lattice_err[k]), _median_pct(study_err[k])
        print(
            f"  median {metric} error after {k:2d} real trials: lattice {lat}, "
            f"next trials in the study {inn}" + ("  (target <= 10%)" if k == 5 else "")
        )


def _median_pct(values: list[float]) -> str:
    """The median as a percentage; "-" when no run got that far (a screening run stops once
    it has reached the target and the last milestone)."""
    return f"{100 * statistics.median(values):.1f}%" if values else "-"


def http_check(spec: StudySpec, path: Path, truth: Truth, budget: int, time_scale: float) -> None:
    """Seed 0's screening study through the real HTTP emulator, beside the in-process one."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/http.db"
        runner = LocalRunner(
            Path(folder) / "trials",
            emulator=EmulatorLaunch(time_scale=time_scale, startup_s=0.2, profile=path),
            num_warmups=0,
        )
        http = run_one(spec, path, truth, 0, budget, True, runner, url)
        inproc = run_one(
            spec,
            path,
            truth,
            0,
            budget,
            True,
            SimRunner(profile=load_profile(path)),
            None,
            InMemoryStorage(),
        )
    same = sum(1 for a, b in zip(http.trials, inproc.trials, strict=False) if a.params == b.params)
    ratios = []
    for trial in http.trials:
        true = truth.values.get(key(dict(trial.params)))
        if true is not None and trial.values:
            ratios.append(abs(trial.values[0] / true[0] - 1.0))
    print(
        f"  HTTP emulator, seed 0 screening: {fmt_trials(http.reached, budget)} trials to "
        f"{TARGET} (in process: {fmt_trials(inproc.reached, budget)}); {same} of "
        f"{len(http.trials)} trials ran the same configuration as the in-process trial of the "
        "same number; measured "
        f"throughput vs the profile's truth: median {100 * statistics.median(ratios):.1f}% "
        f"apart ({http.seconds:.0f} s over HTTP)"
    )


if __name__ == "__main__":
    main()

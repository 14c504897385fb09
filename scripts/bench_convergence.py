"""Convergence of default simulated studies: time to 0.99 of the best-known hypervolume.

For every space (the shipped ones and the benchmark's own under scripts/bench_spaces/, which
the search was not tuned on), each strategy runs as the command line runs a simulated study
without --n-trials (SQLite storage in a temporary folder, the convergence stop, the time
budget), over the seeds:

- ``screened``: the default (each sampled trial the best of K simulated proposals, K = 8);
- ``screened-K``: the same with --screening-candidates K;
- ``plain``: the same study with --screening off (plain TPE, one proposal per trial).

The best-known hypervolume of a space is that of the union of every point any run below stored
plus a long plain TPE run (``--long`` trials or ``--long-budget`` seconds, whichever ends it
first; same process). The hypervolume reference point is (0
throughput, 1.1 x the largest latency of any feasible point in that union). Per strategy the
script prints the median over seeds of: seconds and stored trials until the front first reached
0.99 of the best known (from the first trial's start; ">" when it never did), the hypervolume
ratio at the end, the run's seconds, and how many runs stopped by themselves (front converged)
rather than at the time budget. Ratios are of runs in this process only. The load average is
printed at the start and beside every space: on a shared machine a second of a run is worth
less. Spaces can be split over several invocations with --spaces.

    python scripts/bench_convergence.py [--spaces qwen3-moe.yaml ...] [--seeds 5]
        [--time-budget 60] [--long 400] [--long-budget 240] [--quick]
        [--strategies screened screened-32 plain] [--per-seed]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout, not another installed copy

import optuna  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from optimizer.config import StudyConfig  # noqa: E402
from optimizer.convergence import StopRule, runner_trials  # noqa: E402
from optimizer.interrupts import EXIT_TERMINATED  # noqa: E402
from optimizer.loop import EXIT_INTERRUPTED, STOP_REASON, run_study  # noqa: E402
from optimizer.report.hypervolume import hypervolume_2d  # noqa: E402
from optimizer.spec.load import load_spec  # noqa: E402
from optimizer.spec.models import StudySpec  # noqa: E402
from runners.sim.runner import SimRunner  # noqa: E402

SHIPPED = [
    "qwen3-moe.yaml",
    "qwen3-moe-goodput.yaml",
    "qwen3-8b-latency.yaml",
    "qwen3-32b-a100.yaml",
    "qwen3-32b-awq-l4.yaml",
    "qwen3-30b-a3b-h200.yaml",
    "qwen3-30b-a3b-910b.yaml",
    "deepseek-v3-2x8-h100.yaml",
    "mixtral-8x7b-l40s.yaml",
    "phi-4-from-config.yaml",
    "tiny-qwen3-moe-cpu.yaml",
]
BENCH_SPACES = sorted(str(p) for p in (Path(__file__).parent / "bench_spaces").glob("*.yaml"))
QUICK = ["qwen3-moe.yaml", "qwen3-32b-a100.yaml", *BENCH_SPACES[:1]]
TARGET = 0.99
Point = tuple[float, float]


@dataclass
class Run:
    """One study run: when each stored runner trial finished, and its feasible point."""

    timeline: list[tuple[float, Point | None]]  # (seconds since the first trial started, point)
    seconds: float
    converged: bool


def feasible_point(trial: FrozenTrial) -> Point | None:
    if trial.state != TrialState.COMPLETE or not trial.values:
        return None
    if any(v > 0 for v in trial.constraints.values()):
        return None
    return (trial.values[0], trial.values[1])


def run_one(
    spec: StudySpec, strategy: str, seed: int, budget: float, n_trials: int | None = None
) -> Run:
    """One study as the command line runs it; with `n_trials`, a run of that many trials or
    `budget` seconds, whichever comes first (no plateau stop: the long reference run)."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        name = f"{strategy}-{seed}"
        stop = (
            StopRule(time_budget_s=budget, rel_gain=-1.0, max_trials=n_trials)
            if n_trials
            else StopRule(time_budget_s=budget)
        )
        config = StudyConfig.of(
            spec,
            study_name=name,
            storage=url,
            seed=seed,
            quiet=True,
            screening=strategy.startswith("screened"),
            screening_candidates=int(strategy.split("-")[1]) if "-" in strategy else None,
            stop=stop,
        )
        with contextlib.chdir(folder), contextlib.redirect_stdout(io.StringIO()):
            status = run_study(config, SimRunner())
        if status in (EXIT_INTERRUPTED, EXIT_TERMINATED):  # the study caught the signal
            raise Interrupted(status)
        study = optuna.load_study(study_name=name, storage=url)
        trials = runner_trials(study.get_trials(deepcopy=False))
        every = study.get_trials(deepcopy=False)
        start = min(t.datetime_start for t in every if t.datetime_start is not None)
        timeline = [
            ((t.datetime_complete - start).total_seconds(), feasible_point(t))
            for t in trials
            if t.datetime_complete is not None
        ]
        seconds = timeline[-1][0] if timeline else 0.0
        reason = str(study.user_attrs.get(STOP_REASON, ""))
        return Run(timeline, seconds, reason.startswith("stopped: the front converged"))


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived (a study caught it and returned its status): stop the
    benchmark, not just the study it hit."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM outside a study (between studies, while scoring): stop like Ctrl-C."""
    raise Interrupted(EXIT_TERMINATED)


def reach(run: Run, ref: Point, target_hv: float) -> tuple[float, int] | None:
    """(seconds, stored trials) when the run's front first reached `target_hv`."""
    found: list[Point] = []
    for index, (at, point) in enumerate(run.timeline, start=1):
        if point is not None:
            found.append(point)
            if hypervolume_2d(found, ref) >= target_hv:
                return at, index
    return None


def final_hv(run: Run, ref: Point) -> float:
    return hypervolume_2d([p for _, p in run.timeline if p is not None], ref)


def load() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared: read seconds so)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--time-budget", type=float, default=60.0)
    parser.add_argument("--long", type=int, default=400, help="trials of the long plain run")
    parser.add_argument(
        "--long-budget", type=float, default=240.0, help="seconds cap of the long plain run"
    )
    parser.add_argument("--strategies", nargs="+", default=["screened", "plain"])
    parser.add_argument(
        "--quick", action="store_true", help="three spaces, two seeds, a 200-trial long run"
    )
    parser.add_argument(
        "--per-seed", action="store_true", help="also one line per run (a median hides a miss)"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spaces = args.spaces or (QUICK if args.quick else [*SHIPPED, *BENCH_SPACES])
    seeds = 2 if args.quick and args.seeds == 5 else args.seeds
    long_trials = 200 if args.quick and args.long == 400 else args.long
    print(
        f"{len(spaces)} spaces, {seeds} seeds, time budget {args.time_budget:g} s, long run "
        f"{long_trials} plain trials (at most {args.long_budget:g} s); target {TARGET} of the "
        f"best-known hypervolume; load average {load()}",
        flush=True,
    )
    for space in spaces:
        spec = load_spec(space)
        started = time.perf_counter()
        runs = {
            s: [run_one(spec, s, seed, args.time_budget) for seed in range(seeds)]
            for s in args.strategies
        }
        long = run_one(spec, "plain", 1000, args.long_budget, n_trials=long_trials)
        union = [p for rs in runs.values() for r in rs for _, p in r.timeline if p is not None]
        union += [p for _, p in long.timeline if p is not None]
        if not union:
            print(f"\n{space}: no feasible point in any run")
            continue
        ref = (0.0, 1.1 * max(lat for _, lat in union))
        best = hypervolume_2d(union, ref)
        print(
            f"\n{Path(space).name}: best known = union of all runs + a {long_trials}-trial plain "
            f"run (it alone: {final_hv(long, ref) / best:.3f}, {len(long.timeline)} trials); "
            f"{time.perf_counter() - started:.0f} s; load average {load()}"
        )
        print(
            f"{'strategy':<10}{'s to 0.99':>11}{'trials':>8}{'reached':>9}{'HV end':>8}"
            f"{'run s':>7}{'trials':>8}{'stopped itself':>16}"
        )
        for strategy, strategy_runs in runs.items():
            reached = [reach(r, ref, TARGET * best) for r in strategy_runs]
            ok = [x for x in reached if x is not None]
            half = len(ok) * 2 > len(reached)
            secs = (
                f"{statistics.median(x[0] for x in ok):.1f}" if half else f">{args.time_budget:g}"
            )
            trials = f"{statistics.median(x[1] for x in ok):.0f}" if half else "-"
            ratio = statistics.median(final_hv(r, ref) / best for r in strategy_runs)
            print(
                f"{strategy:<10}{secs:>11}{trials:>8}{len(ok):>6}/{len(reached):<2}{ratio:>8.3f}"
                f"{statistics.median(r.seconds for r in strategy_runs):>7.0f}"
                f"{statistics.median(len(r.timeline) for r in strategy_runs):>8.0f}"
                f"{sum(r.converged for r in strategy_runs):>13}/{len(strategy_runs)}",
                flush=True,
            )
            if args.per_seed:
                for seed, (run, hit) in enumerate(zip(strategy_runs, reached, strict=True)):
                    at = f"{hit[0]:.1f} s, trial {hit[1]}" if hit else "never"
                    print(
                        f"  seed {seed}: 0.99 at {at}; HV end {final_hv(run, ref) / best:.3f}; "
                        f"{run.seconds:.0f} s, {len(run.timeline)} trials; "
                        f"{'stopped itself' if run.converged else 'time budget'}"
                    )


if __name__ == "__main__":
    # A study turns SIGTERM/SIGINT into its exit status and returns; without this the
    # benchmark went on with the next seed. It runs every study in this process (no children
    # of its own), so stopping here stops all of its work.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except (Interrupted, KeyboardInterrupt) as stop:
        status = stop.status if isinstance(stop, Interrupted) else EXIT_INTERRUPTED
        print(f"\ninterrupted (exit {status}); partial results above", file=sys.stderr)
        sys.exit(status)

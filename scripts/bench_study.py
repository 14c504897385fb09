"""Time the main job: `qwen3-moe.yaml` for N trials on the simulator, against the bare loop.

The baseline, measured in the same run, is the identical study (same sampler, same SQLite
storage, same attributes written) with a runner that answers instantly, so the ratio says
what the simulator adds on top of Optuna's own cost. Also reports the Pareto front size and
whether the best-throughput point beats the engine-defaults baseline trial.

The third row is the command a user types (`python -m optimizer.study --space qwen3-moe.yaml
--n-trials N` in a fresh folder), imports and end report included; issue 3 asks for < 60 s
at 200 trials.

    python scripts/bench_study.py [--n-trials 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

from optimizer.cli import make_runner, trials_dir
from optimizer.config import RunnerChoice, StudyConfig
from optimizer.loop import run_study
from optimizer.spec.load import load_spec
from runners import Runner
from runners.bench.metrics import distribution_ms
from runners.types import Candidate, Metrics, Placement, TrialOutcome, Workload


class InstantRunner:
    """Returns the same fixed metrics at once: the cost of the search loop alone."""

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        flat = distribution_ms(np.array([0.05, 0.1]))
        metrics = Metrics(
            1000, 0, 50.0, 200_000, 200_000, 20.0, 4000.0, 8000.0, 8, flat, flat, flat, flat
        )
        return TrialOutcome("ok", metrics=metrics, diagnostics=(("replicas", 1.0),))


def timed_study(runner: Runner, n_trials: int, workdir: Path) -> tuple[float, optuna.Study]:
    url = f"sqlite:///{workdir / 'bench.db'}"
    config = StudyConfig.of(
        load_spec("qwen3-moe.yaml"), storage=url, study_name="bench", n_trials=n_trials, quiet=True
    )
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the study's own table is not timed output
        run_study(config, runner)
    elapsed = time.perf_counter() - started
    return elapsed, optuna.load_study(study_name="bench", storage=url)


def timed_cli(n_trials: int, workdir: Path) -> float:
    """The command a user types, end to end: imports, study, final table and report files."""
    argv = [sys.executable, "-m", "optimizer.study", "--space", "qwen3-moe.yaml"]
    started = time.perf_counter()
    subprocess.run(
        [*argv, "--n-trials", str(n_trials)], cwd=workdir, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sim_s: list[float] = []
    bare_s: list[float] = []
    cli_s: list[float] = []
    fronts: list[int] = []
    beats: list[bool] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            runner = make_runner(RunnerChoice(), trials_dir("bench"))
            elapsed, study = timed_study(runner, args.n_trials, Path(tmp))
            sim_s.append(elapsed)
            front = study.best_trials
            fronts.append(len(front))
            baseline = next(t for t in study.trials if t.user_attrs.get("baseline"))
            assert baseline.values is not None
            best = max(t.values[0] for t in front if t.values is not None)
            beats.append(best > baseline.values[0])
        with tempfile.TemporaryDirectory() as tmp:
            bare_s.append(timed_study(InstantRunner(), args.n_trials, Path(tmp))[0])
        with tempfile.TemporaryDirectory() as tmp:
            cli_s.append(timed_cli(args.n_trials, Path(tmp)))
    sim_med, bare_med = statistics.median(sim_s), statistics.median(bare_s)
    print(f"qwen3-moe.yaml, {args.n_trials} trials, {args.repeats} repeats (wall seconds)")
    print(f"{'':28}{'median':>10}{'min':>10}{'max':>10}")
    rows = (
        ("simulator study", sim_s),
        ("bare loop (instant runner)", bare_s),
        ("CLI end to end", cli_s),
    )
    for label, runs in rows:
        median = statistics.median(runs)
        print(f"{label:28}{median:>10.2f}{min(runs):>10.2f}{max(runs):>10.2f}")
    print(f"ratio simulator / bare loop: {sim_med / bare_med:.2f}x")
    per_trial_ms = sim_med / args.n_trials * 1000
    print(f"per trial: {per_trial_ms:.0f} ms (bare {bare_med / args.n_trials * 1000:.0f} ms)")
    worst = max(cli_s)
    print(f"CLI budget 60 s: {'met' if worst < 60 else 'MISSED'} (worst {worst:.1f} s)")
    print(f"Pareto points per run: {fronts}; best throughput beats baseline: {beats}")


if __name__ == "__main__":
    main()

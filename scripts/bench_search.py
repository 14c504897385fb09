"""Search efficiency on the simulator: hypervolume found per trial budget, and crash waste.

For each space: a reference Pareto front is the best of a large random sample of the space
(``--reference`` configurations, all evaluated) plus every configuration any run below
evaluated; the hypervolume reference point is (0 throughput, the largest latency of a feasible
sampled point). Then each strategy runs ``--budget`` runner trials over ``--seeds`` seeds, and
the script prints, per strategy: median hypervolume ratio (found / reference) at 20/40/80
trials, median trials to reach 0.9, crash waste (estimated GPU seconds of trials that crashed
over all runner seconds), and for the default strategy how many reference-front
configurations pre-flight would reject given the run's final history ("must not reject the
true optimum").

Strategies: tpe (the default: TPE + engine-default anchors + pre-flight), tpe-no-preflight,
nsga2, gp (if PyTorch is installed), random (our driver: anchors + pre-flight), plain-random
(random sampling with neither, i.e. random search as a user would do it), grid (our lattice),
autotune (vLLM auto_tune.sh style: the baseline engine's defaults with a grid over
max-num-seqs x max-num-batched-tokens, in its nested-loop order).

    python scripts/bench_search.py [--spaces qwen3-moe.yaml] [--seeds 5] [--budget 80]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from optimizer.config import StudyConfig
from optimizer.feasibility import FeasibilityChecker
from optimizer.loop import run_study
from optimizer.objectives import constraint_values, objective_values
from optimizer.record import is_rejection
from optimizer.space import baseline_params, candidate_from_params, suggest
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.engines import resolve_candidate
from runners.sim.runner import SimRunner
from runners.types import Candidate, Placement, TrialOutcome, Workload

Point = tuple[float, float]  # (throughput, latency)


class MemoRunner:
    """SimRunner with a cache: the simulator is deterministic, so a repeat is free here."""

    def __init__(self) -> None:
        self._inner = SimRunner()
        self._cache: dict[Candidate, TrialOutcome] = {}

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        if candidate not in self._cache:
            self._cache[candidate] = self._inner.run(candidate, workload, placement)
        return self._cache[candidate]


def point_of(outcome: TrialOutcome, spec: StudySpec) -> Point | None:
    if outcome.status != "ok" or outcome.metrics is None:
        return None
    if any(v > 0 for v in constraint_values(outcome.metrics, spec.objectives.slos).values()):
        return None
    return objective_values(outcome.metrics, spec.objectives)


def hypervolume(points: Sequence[Point], ref_latency: float) -> float:
    """Area dominated by (max throughput, min latency) points, bounded by (0, ref_latency)."""
    front = sorted((p for p in points if p[1] < ref_latency and p[0] > 0), key=lambda p: -p[0])
    area, best_latency = 0.0, ref_latency
    for index, (throughput, latency) in enumerate(front):
        if latency >= best_latency:
            continue
        next_throughput = 0.0
        for later in front[index + 1 :]:
            if later[1] < latency:
                next_throughput = later[0]
                break
        area += (throughput - next_throughput) * (ref_latency - latency)
        best_latency = latency
    return area


def trial_seconds(outcome: TrialOutcome) -> float:
    return dict(outcome.diagnostics).get("trial_seconds", 0.0)


@dataclass
class Run:
    points_by_trial: list[Point | None]
    seconds: list[float]
    crashed: list[bool]
    rejected: int
    history: list[FrozenTrial]


def run_strategy(
    spec: StudySpec, strategy: str, seed: int, budget: int, runner: MemoRunner
) -> Run:
    outcomes: list[TrialOutcome] = []

    class Recording:
        def run(self, c: Candidate, w: Workload, p: Placement) -> TrialOutcome:
            outcome = runner.run(c, w, p)
            outcomes.append(outcome)
            return outcome

    if strategy == "autotune":
        return autotune(spec, budget, runner)
    sampler = "random" if strategy == "plain-random" else strategy.split("-")[0]
    config = StudyConfig.of(
        spec,
        n_trials=budget,
        storage="memory",
        study_name=f"{strategy}-{seed}",
        sampler=sampler,  # type: ignore[arg-type]
        seed=seed,
        quiet=True,
        preflight="no-preflight" not in strategy and strategy != "plain-random",
        anchors=strategy != "plain-random",
    )
    storage = InMemoryStorage()
    with contextlib.redirect_stdout(io.StringIO()):
        run_study(config, Recording(), storage=storage)
    study = optuna.load_study(study_name=f"{strategy}-{seed}", storage=storage)
    trials = study.get_trials(deepcopy=False)
    return Run(
        points_by_trial=[point_of(o, spec) for o in outcomes],
        seconds=[trial_seconds(o) for o in outcomes],
        crashed=[o.status == "crashed" for o in outcomes],
        rejected=sum(is_rejection(t) for t in trials if t.state == TrialState.PRUNED),
        history=trials,
    )


def autotune(spec: StudySpec, budget: int, runner: MemoRunner) -> Run:
    """vLLM auto_tune.sh: engine defaults, nested grid over max-num-seqs x batched tokens."""
    base = baseline_params(spec)
    engine = str(base["engine"])
    seqs_name = f"{engine}.max-num-seqs"
    tokens_name = next((n for n in base if "max-num-batched-tokens" in n), None)
    node_group = spec.node_group
    placement = Placement(node_group, tuple(range(node_group.gpus_per_node)))
    outcomes: list[TrialOutcome] = []
    for seqs in (64, 128, 256, 512, 1024):
        for tokens in (2048, 4096, 8192, 16384):
            if len(outcomes) >= budget:
                break
            params = dict(base) | {seqs_name: seqs}
            if tokens_name is not None:
                params[tokens_name] = tokens
            candidate = candidate_from_params(spec, params)
            outcomes.append(runner.run(candidate, spec.workload_spec, placement))
    return Run(
        points_by_trial=[point_of(o, spec) for o in outcomes],
        seconds=[trial_seconds(o) for o in outcomes],
        crashed=[o.status == "crashed" for o in outcomes],
        rejected=0,
        history=[],
    )


def reference_sample(
    spec: StudySpec, size: int, runner: MemoRunner
) -> tuple[list[Point], list[FrozenTrial]]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=12345)
    )
    node_group = spec.node_group
    placement = Placement(node_group, tuple(range(node_group.gpus_per_node)))
    points: list[Point] = []
    for _ in range(size):
        trial = study.ask()
        outcome = runner.run(suggest(trial, spec), spec.workload_spec, placement)
        point = point_of(outcome, spec)
        if point is None:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            points.append(point)
            study.tell(trial, list(point))
    return points, study.best_trials


def crash_waste(run: Run) -> float:
    crashed = sum(s for s, c in zip(run.seconds, run.crashed, strict=True) if c)
    return crashed / max(1e-9, sum(run.seconds))


def trials_to_reach(points: list[Point | None], ref: float, target_hv: float) -> int | None:
    found: list[Point] = []
    for index, point in enumerate(points, start=1):
        if point is not None:
            found.append(point)
            if hypervolume(found, ref) >= target_hv:
                return index
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["qwen3-moe.yaml"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=80)
    parser.add_argument("--reference", type=int, default=1500)
    parser.add_argument("--strategies", nargs="+", default=None)
    args = parser.parse_args()
    strategies = args.strategies or [
        "tpe",
        "tpe-no-preflight",
        "nsga2",
        *(["gp"] if importlib.util.find_spec("torch") else []),
        "random",
        "plain-random",
        "grid",
        "autotune",
    ]
    budgets = [b for b in (20, 40, 80) if b <= args.budget]
    for space in args.spaces:
        spec = load_spec(space)
        runner = MemoRunner()
        started = time.perf_counter()
        sample, sample_front = reference_sample(spec, args.reference, runner)
        runs = {
            s: [run_strategy(spec, s, seed, args.budget, runner) for seed in range(args.seeds)]
            for s in strategies
        }
        every = sample + [p for rs in runs.values() for r in rs for p in r.points_by_trial if p]
        ref_latency = max(p[1] for p in sample) if sample else 1.0
        true_hv = hypervolume(every, ref_latency)
        evaluated = sum(len(r.points_by_trial) for rs in runs.values() for r in rs)
        print(
            f"\n{space}: reference = best of {args.reference} random configurations "
            f"({len(sample)} feasible) + all {evaluated} evaluated by the runs; HV reference "
            f"point (0, {ref_latency:.1f}); {args.seeds} seeds; "
            f"{time.perf_counter() - started:.0f} s"
        )
        head = "".join(f"{'HV@' + str(b):>9}" for b in budgets)
        print(f"{'strategy':<22}{head}{'to 0.9':>9}{'crash waste':>13}{'rejected':>10}")
        for strategy, strategy_runs in runs.items():
            cells = []
            for budget in budgets:
                ratios = [
                    hypervolume([p for p in r.points_by_trial[:budget] if p], ref_latency)
                    / true_hv
                    for r in strategy_runs
                ]
                cells.append(f"{statistics.median(ratios):>9.3f}")
            reach = [
                trials_to_reach(r.points_by_trial, ref_latency, 0.9 * true_hv)
                for r in strategy_runs
            ]
            reached = sorted(x for x in reach if x is not None)
            reach_text = (
                f"{statistics.median(reached):>9.0f}"
                if len(reached) * 2 > len(reach)
                else f"{'>' + str(args.budget):>9}"
            )
            waste = [
                sum(s for s, c in zip(r.seconds, r.crashed, strict=True) if c)
                / max(1e-9, sum(r.seconds))
                for r in strategy_runs
            ]
            rejected = statistics.median(r.rejected for r in strategy_runs)
            print(
                f"{strategy:<22}{''.join(cells)}{reach_text}{statistics.median(waste):>12.1%}"
                f"{rejected:>10.0f}"
            )
        checker = FeasibilityChecker(spec)
        wrongly = []
        for run in runs.get("tpe", []):
            rejected_front = 0
            for trial in sample_front:
                candidate = candidate_from_params(spec, trial.params)
                resolved = resolve_candidate(candidate, spec.node_group)
                verdict = checker.check(resolved, trial.params, trial.distributions, run.history)
                rejected_front += not verdict.launch
            wrongly.append(rejected_front)
        print(
            f"reference-front configurations pre-flight would reject after each tpe run: "
            f"{wrongly} of {len(sample_front)}"
        )


if __name__ == "__main__":
    main()

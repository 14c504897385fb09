"""Cheap goodput screening: a coarse load search ranks the candidates, the trial runs the full
one, and the benchmarks the prediction simulated are read back by the trial, never redone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.storages import InMemoryStorage

from optimizer.config import RunnerChoice, StudyConfig
from optimizer.loop import run_study
from optimizer.objectives import trial_values, trial_workload
from optimizer.predictors import SimPredictor
from optimizer.screening import SCREENED, predicted_point
from optimizer.space import candidate_from_params, suggest
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from optimizer.workload_runs import WORKLOAD_RUNS
from runners.engines import resolve_candidate
from runners.load_search import RANKING_TOLERANCE, coarse
from runners.sim import Noise
from runners.sim.runner import SimRunner
from runners.sim.sim_cache import SimCache
from runners.types import ServingConfig, TrialOutcome, Workload


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the study writes its report under studies/


@pytest.fixture(scope="module")
def goodput() -> StudySpec:
    return load_spec("qwen3-moe-goodput.yaml")


def _candidates(spec: StudySpec, n: int) -> list[ServingConfig]:
    """The first `n` configurations a seeded random sampler proposes that the engines accept."""
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=1)
    )
    out: list[ServingConfig] = []
    while len(out) < n:
        trial = study.ask()
        resolved = resolve_candidate(suggest(trial, spec), spec.node_group)
        study.tell(trial, [0.0, 0.0])
        if resolved.config is not None:
            out.append(resolved.config)
    return out


def test_the_coarse_search_ranks_goodput_candidates_as_the_full_one(goodput: StudySpec) -> None:
    workload = trial_workload(goodput)
    predictor = SimPredictor(coarse_ranking=True)
    coarse_values: list[float] = []
    full_values: list[float] = []
    for config in _candidates(goodput, 5):
        full = SimRunner().simulate_config(config, workload)
        ranked = predicted_point(predictor.predict(config, workload), goodput)
        if full.metrics is None:
            assert ranked is None, "a crash is a crash whatever the search"
            continue
        values = trial_values(full, goodput)
        feasible = all(v <= 0 for v in values.constraints.values())
        assert (ranked is not None) == feasible
        if ranked is None:
            continue
        coarse_values.append(ranked[0])
        full_values.append(values.values[0])
        cheap = predictor.outcome(config, workload)
        assert cheap.workloads and full.workloads
        cheap_curve, full_curve = cheap.workloads[0].curve, full.workloads[0].curve
        assert cheap_curve is not None and full_curve is not None
        cheap_loads = {p.load for p in cheap_curve.probes}
        assert cheap_loads <= {p.load for p in full_curve.probes}, "loads the full one probes"
        assert len(cheap_loads) < len(full_curve.probes), "the ranking search is cheaper"
        assert cheap_curve.knee is not None and full_curve.knee is not None
        assert cheap_curve.knee.load <= full_curve.knee.load
        assert full_curve.knee.load <= cheap_curve.knee.load * (1 + RANKING_TOLERANCE)
    assert len(full_values) >= 3, "enough feasible candidates to rank"
    order = sorted(range(len(full_values)), key=lambda i: full_values[i])
    assert sorted(range(len(coarse_values)), key=lambda i: coarse_values[i]) == order


def test_a_workload_without_a_load_search_is_predicted_exactly() -> None:
    plain = trial_workload(load_spec("tiny-qwen3-moe-cpu.yaml"))
    assert plain.load_search is None
    assert coarse(plain) == plain


def test_a_cache_serves_only_runners_that_would_simulate_the_same() -> None:
    cache = SimCache(None, None)
    with pytest.raises(ValueError):
        SimRunner(noise=Noise.typical(), cache=cache)
    predictor = SimPredictor()
    assert not predictor.share_with(SimRunner(noise=Noise.typical()))
    runner = SimRunner()
    assert predictor.share_with(runner) and runner.cache is predictor.cache


@pytest.mark.parametrize("noise", [False, True])
def test_a_default_simulated_goodput_study_simulates_each_benchmark_once(
    goodput: StudySpec, noise: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulated: Counter[tuple[ServingConfig, Workload]] = Counter()
    inner = SimRunner._simulate_once

    def counted(
        self: SimRunner, config: ServingConfig, workload: Workload
    ) -> tuple[TrialOutcome, float]:
        simulated[(config, workload)] += 1
        return inner(self, config, workload)

    monkeypatch.setattr(SimRunner, "_simulate_once", counted)
    storage = InMemoryStorage()
    config = StudyConfig.of(
        goodput,
        n_trials=6,
        storage="memory",
        study_name="once",
        quiet=True,
        screening=True,
        runner=RunnerChoice(noise=noise),
    )
    runner = SimRunner(noise=Noise.typical() if noise else None)
    assert run_study(config, runner, storage=storage) == 0
    assert simulated and max(simulated.values()) == 1, "no benchmark simulated twice"
    monkeypatch.setattr(SimRunner, "_simulate_once", inner)
    study = optuna.load_study(study_name="once", storage=storage)
    screened = [t for t in study.trials if SCREENED in t.user_attrs]
    assert screened, "the study screened some of its trials"
    workload = trial_workload(goodput)
    for trial in screened:
        resolved = resolve_candidate(
            candidate_from_params(goodput, trial.params), goodput.node_group
        )
        assert resolved.config is not None
        full = SimRunner(noise=runner.noise).simulate_config(resolved.config, workload)
        if full.metrics is None:
            continue
        assert trial.values == list(trial_values(full, goodput).values), "the full search"
        assert len(trial.user_attrs[WORKLOAD_RUNS][0]["probes"]) == len(
            full.workloads[0].curve.probes  # type: ignore[index,union-attr]
        )

"""The screening pool of a simulated study, and local moves around the front."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from optimizer.config import StudyConfig
from optimizer.convergence import StopRule, runner_trials
from optimizer.local_moves import front_trials, local_move
from optimizer.loop import STOP_REASON, run_study
from optimizer.objectives import trial_values, trial_workload
from optimizer.predictors import SimPredictor
from optimizer.screening import SCREENED, Scored, Screen, params_key
from optimizer.space import ENGINE_PARAM, baseline_params, candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.engines import resolve_candidate
from runners.sim.prediction import Prediction
from runners.sim.runner import SimRunner
from runners.types import ServingConfig, TrialOutcome, Workload


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the study writes its report under studies/


class Counting(SimPredictor):
    """The simulator predictor, counting every real simulation by configuration."""

    def __init__(self) -> None:
        super().__init__()
        self.simulated: list[ServingConfig] = []
        inner = self._runner.simulate_config

        def counted(config: ServingConfig, workload: Workload) -> TrialOutcome:
            self.simulated.append(config)
            return inner(config, workload)

        self._runner.simulate_config = counted  # type: ignore[method-assign]


def _started(spec: StudySpec, name: str) -> optuna.Study:
    storage = InMemoryStorage()
    config = StudyConfig.of(
        spec, n_trials=2, storage="memory", study_name=name, quiet=True, screening=False
    )
    run_study(config, SimRunner(), storage=storage)
    return optuna.load_study(study_name=name, storage=storage)


def _take_waiting(study: optuna.Study) -> None:
    """Run nothing: fail the enqueued trial, as if it had been lost, so the next round runs."""
    study.tell(study.ask(), state=TrialState.FAIL)


def test_no_configuration_is_simulated_twice_and_later_rounds_score_the_pool(
    spec: StudySpec,
) -> None:
    study = _started(spec, "pool")
    predictor = Counting()
    screen = Screen(spec, predictor, trial_workload(spec), "tpe", seed=1, candidates=6)
    assert screen.pool is not None, "the simulator as predictor pools its candidates"
    for _ in range(4):
        screen.enqueue_best(study)
        _take_waiting(study)
    assert predictor.simulated, "proposals were simulated"
    assert len(predictor.simulated) == len(set(predictor.simulated)), "each one once"
    last = study.get_trials(deepcopy=False)[-1]
    assert last.user_attrs[SCREENED]["pooled"] > 0, "the last round scored earlier proposals"


def test_the_sampler_copy_learns_every_simulated_candidate_once(spec: StudySpec) -> None:
    study = _started(spec, "learn")
    predictor = SimPredictor()
    screen = Screen(spec, predictor, trial_workload(spec), "tpe", seed=2, candidates=5)
    before = len(study.trials)
    screen.enqueue_best(study)
    pool = screen.pool
    assert pool is not None and len(pool.learned) > 1
    stored = study.get_trials(deepcopy=False)
    assert len(stored) == before + 1, "the stored study gains only the chosen one"
    for key, trial in pool.learned.items():
        if trial.state != TrialState.COMPLETE:
            continue
        params = dict(trial.params)
        resolved = resolve_candidate(candidate_from_params(spec, params), spec.node_group)
        assert resolved.config is not None
        outcome = predictor.outcome(resolved.config, trial_workload(spec))
        assert tuple(trial.values) == trial_values(outcome, spec).values, "its own result"
        assert params_key(params) == key
    known = pool.trials(stored, lambda t: params_key(dict(t.params)))
    keys = [params_key(dict(t.params)) for t in known]
    assert len(keys) == len(set(keys)), "a stored trial chosen from the pool is not doubled"
    assert all(t.state != TrialState.WAITING for t in known)


def test_a_pooled_candidate_is_chosen_without_being_simulated_again(spec: StudySpec) -> None:
    study = _started(spec, "chosen")
    predictor = Counting()
    screen = Screen(spec, predictor, trial_workload(spec), "tpe", seed=3, candidates=3)
    assert screen.pool is not None
    base = baseline_params(spec)
    moved = dict(base)
    moved[next(k for k in sorted(base) if k.endswith("max-num-seqs"))] = 999
    template = SimPredictor().predict(_config(spec, base), trial_workload(spec)).metrics
    assert template is not None
    great = dataclasses.replace(template, output_throughput_tok_s=1e9)
    key = params_key(moved)
    screen.pool.add(key, Scored(moved, Prediction(great, 0.0, 0.0, "test"), (1e9, 1.0)), None)
    best = screen.enqueue_best(study)
    assert best is not None and best.params == moved
    assert _config(spec, moved) not in predictor.simulated


def _config(spec: StudySpec, params: dict[str, object]) -> ServingConfig:
    resolved = resolve_candidate(candidate_from_params(spec, params), spec.node_group)  # type: ignore[arg-type]
    assert resolved.config is not None
    return resolved.config


def _done(params: dict[str, object], values: tuple[float, float]) -> FrozenTrial:
    dists = {k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items()}
    return optuna.trial.create_trial(values=list(values), params=params, distributions=dists)


def test_front_trials_are_the_non_dominated_feasible_ones() -> None:
    a, b = _done({"a": 1}, (100.0, 10.0)), _done({"a": 2}, (200.0, 20.0))
    c = _done({"a": 3}, (150.0, 30.0))  # dominated by b
    crashed = optuna.trial.create_trial(state=TrialState.PRUNED)
    assert front_trials([c, a, crashed, b]) == [b, a], "most throughput first"


def test_local_moves_stay_in_the_space_and_change_little(spec: StudySpec) -> None:
    base = baseline_params(spec)
    front = [_done(dict(base), (1.0, 1.0))]
    rng = random.Random(0)
    differ = []
    for _ in range(60):
        _candidate, move = local_move(spec, front, rng)
        params = move.params
        candidate_from_params(spec, params)  # a valid point of the space (raises if not)
        assert params != base
        assert set(move.distributions) == set(params)
        if params[ENGINE_PARAM] == base[ENGINE_PARAM]:
            differ.append(sum(1 for k in params if params[k] != base.get(k)))
    assert differ and min(differ) >= 1
    assert sorted(differ)[len(differ) // 2] <= 2, "mostly one or two settings moved"


def test_a_default_simulated_study_stops_by_itself_on_a_small_space() -> None:
    spec = load_spec("tiny-qwen3-moe-cpu.yaml")
    storage = InMemoryStorage()
    config = StudyConfig.of(
        spec, storage="memory", study_name="small", quiet=True, stop=StopRule(time_budget_s=600)
    )
    assert run_study(config, SimRunner(), storage=storage) == 0
    study = optuna.load_study(study_name="small", storage=storage)
    assert "front converged" in study.user_attrs[STOP_REASON]
    ran = runner_trials(study.trials)
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in ran)


def test_a_move_from_a_value_the_space_no_longer_allows_draws_a_valid_one(
    spec: StudySpec,
) -> None:
    base = baseline_params(spec)
    name = next(k for k in sorted(base) if k.endswith("kv-cache-dtype"))
    stale = {**base, name: "int4-from-an-older-space"}
    _candidate, move = local_move(spec, [_done(stale, (1.0, 1.0))], random.Random(1))
    candidate_from_params(spec, move.params)
    assert move.params[name] != "int4-from-an-older-space"

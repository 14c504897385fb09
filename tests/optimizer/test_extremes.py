"""The sweep of the front's ends (optimizer.extremes) and the stop rule's wait for it."""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import RandomSampler
from optuna.trial import FrozenTrial

from optimizer.config import StopRule
from optimizer.convergence import Stopper
from optimizer.extremes import EndSweep, ends_of, neighbour_moves, other_values
from optimizer.objectives import trial_workload
from optimizer.predictors import SimPredictor
from optimizer.screening import SWEEP_SHARE, Screen, params_key
from optimizer.space import ENGINE_PARAM, baseline_params, candidate_from_params, suggest
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec

from .test_convergence import trials
from .test_screening_pool import _started


def test_one_setting_values_cover_the_bounds_and_steps_and_never_the_value() -> None:
    assert other_values(CategoricalDistribution(["a", "b", "c"]), "b") == ["a", "c"]
    ints = other_values(IntDistribution(32, 1024, log=True), 300)
    assert ints == [32, 100, 200, 450, 900, 1024]
    assert other_values(IntDistribution(1, 8), 8) == [1, 3, 5]
    floats = other_values(FloatDistribution(0.8, 0.95, step=0.01), 0.9)
    assert [round(v, 2) for v in floats] == [0.8, 0.81, 0.95]
    assert 0.9 not in [round(v, 2) for v in floats]


def _front_point(
    spec: StudySpec, values: list[float], params: dict[str, object] | None = None
) -> FrozenTrial:
    """A finished trial at `params` (the sampler's own pick when None), as the front holds it."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=RandomSampler(0))
    if params is not None:
        study.enqueue_trial(params)
    trial = study.ask()
    suggest(trial, spec)
    return optuna.trial.create_trial(
        values=values, params=dict(trial.params), distributions=dict(trial.distributions)
    )


def test_the_sweep_tries_every_neighbour_of_both_ends_once_then_ends() -> None:
    spec = load_spec("qwen3-moe.yaml")
    high = _front_point(spec, [200.0, 20.0])
    low = _front_point(spec, [100.0, 10.0], baseline_params(spec))
    front = [high, low]
    expected = len(neighbour_moves(high)) + len(neighbour_moves(low))
    sweep = EndSweep(seed=0)
    assert sweep.pending(front) == expected
    seen: set[tuple[tuple[str, str], ...]] = set()
    rng = random.Random(0)
    from_high = 0
    while (move := sweep.next_move(spec, front, seen.__contains__, params_key, rng)) is not None:
        _candidate, neighbour = move
        candidate_from_params(spec, neighbour.params)  # a valid point of the space
        key = params_key(neighbour.params)
        assert key not in seen, "no neighbour twice"
        seen.add(key)
        base = high.params if neighbour.base == high.params else low.params
        from_high += base is high.params
        if neighbour.params[ENGINE_PARAM] == base[ENGINE_PARAM]:
            changed = [k for k in neighbour.params if neighbour.params[k] != base.get(k)]
            assert len(changed) <= 2, "one setting (and what it newly enables)"
    assert sweep.pending(front) == 0
    assert 0 < from_high < len(seen), "both ends are swept"
    assert len(seen) >= expected // 2


def test_the_front_has_not_converged_while_an_end_is_unswept() -> None:
    rule = StopRule(min_evaluations=10, window_evaluations=5, rel_gain=0.01)
    flat = trials([(100.0 * (i + 1), 10.0) for i in range(10)] + [(50.0, 10.0)] * 5)
    left = [3]
    stopper = Stopper(rule, 1, unswept=lambda: left[0])
    assert stopper.reason(flat) is None, "the plateau holds but an end's neighbours are untried"
    left[0] = 0
    reason = stopper.reason(flat)
    assert reason is not None and "front converged" in reason
    assert "front converged" in (Stopper(rule, 1).reason(flat) or ""), "no sweep: plateau alone"


def test_the_ends_are_the_fronts_and_each_engines_own() -> None:
    def point(engine: str, n: int, values: tuple[float, float]) -> FrozenTrial:
        params = {ENGINE_PARAM: engine, "n": n}
        dists = {ENGINE_PARAM: CategoricalDistribution(["a", "b"]), "n": IntDistribution(0, 9)}
        return optuna.trial.create_trial(values=list(values), params=params, distributions=dists)

    top, low, mid = (
        point("a", 1, (300.0, 30.0)),
        point("a", 2, (100.0, 5.0)),
        point("a", 3, (200.0, 9.0)),
    )
    b_top, b_low = point("b", 4, (250.0, 40.0)), point("b", 5, (90.0, 35.0))  # dominated by a
    ends = ends_of([mid, b_low, top, b_top, low])
    assert ends == [top, low, b_top], "the front's ends, then each engine's top, each once"
    assert ends_of([mid, top, low]) == [top, low], "one engine: the front's two ends"


def test_a_simulated_screening_round_sweeps_the_ends_first(
    spec: StudySpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the started study writes its report under studies/
    study = _started(spec, "sweep")
    screen = Screen(spec, SimPredictor(), trial_workload(spec), "tpe", seed=4, candidates=8)
    screen.enqueue_best(study)
    assert screen.ends and screen.unswept() > 0, "the front's ends are known and not yet swept"
    pool = screen.pool
    assert pool is not None

    def one_away(params: dict[str, object]) -> bool:
        return any(sum(params.get(k) != v for k, v in e.params.items()) == 1 for e in screen.ends)

    neighbours = [t for t in pool.learned.values() if one_away(dict(t.params))]
    assert len(neighbours) >= int(8 * SWEEP_SHARE), "most of the round swept an end"

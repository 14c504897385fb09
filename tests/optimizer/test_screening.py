"""Screening: the scoring of predicted candidates, and a screened simulated study."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from optimizer.config import StudyConfig
from optimizer.feasibility import FeasibilityChecker, Verdict
from optimizer.loop import run_study
from optimizer.objectives import trial_workload
from optimizer.predictors import SimPredictor, study_predictor
from optimizer.screening import (
    SCREENED,
    Scored,
    Screen,
    choose,
    draws,
    expected_goodput_gain,
    expected_hv_gain,
    predicted_point,
    score_all,
    with_crash_odds,
)
from optimizer.space import baseline_params, candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.engines import resolve_candidate
from runners.sim import Noise
from runners.sim.prediction import Prediction
from runners.sim.runner import SimRunner
from runners.types import ServingConfig, SettingValue, Workload


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the study writes its report under studies/


FRONT = [(100.0, 10.0), (200.0, 20.0), (300.0, 40.0)]
REF = (0.0, 50.0)


def test_dominated_candidate_never_beats_an_improving_one() -> None:
    z = draws()
    dominated = expected_hv_gain((150.0, 30.0), 0.0, 0.0, FRONT, REF, z)
    improving = expected_hv_gain((250.0, 15.0), 0.0, 0.0, FRONT, REF, z)
    assert dominated == 0.0
    assert improving > 0.0
    for sigma in (0.05, 0.2):  # with spread the dominated one may gain a little, never more
        assert expected_hv_gain((150.0, 30.0), sigma, 0.0, FRONT, REF, z) < expected_hv_gain(
            (250.0, 15.0), sigma, 0.0, FRONT, REF, z
        )


def test_certain_crash_scores_zero_and_crash_odds_scale_the_gain() -> None:
    z = draws()
    assert expected_hv_gain((400.0, 5.0), 0.1, 1.0, FRONT, REF, z) == 0.0
    sure = expected_hv_gain((400.0, 5.0), 0.0, 0.0, FRONT, REF, z)
    half = expected_hv_gain((400.0, 5.0), 0.0, 0.5, FRONT, REF, z)
    assert half == pytest.approx(sure / 2)
    assert expected_goodput_gain(500.0, 0.1, 1.0, 100.0, z) == 0.0


def test_more_uncertainty_raises_the_worth_of_a_candidate_near_the_front() -> None:
    z = draws()
    near = (195.0, 20.5)  # just behind the front point (200, 20)
    gains = [expected_hv_gain(near, s, 0.0, FRONT, REF, z) for s in (0.0, 0.05, 0.2)]
    assert gains[0] == 0.0
    assert 0.0 < gains[1] < gains[2]
    goodput = [expected_goodput_gain(95.0, s, 0.0, 100.0, z) for s in (0.0, 0.05, 0.2)]
    assert goodput[0] == 0.0 and 0.0 < goodput[1] < goodput[2]


def test_rejected_candidates_are_never_chosen() -> None:
    ok = Prediction(None, 0.0, 1.0, "test")
    rejected = Scored({"a": 1}, None, None, score=0.0)
    worthless = Scored({"a": 2}, ok, None, score=0.0)
    worth = Scored({"a": 3}, ok, (1.0, 1.0), score=5.0)
    assert choose([rejected, worthless, worth]) is worth
    assert choose([rejected, worthless]) is worthless, "the sampler's first launchable pick"
    assert choose([rejected]) is None


class ByBatch:
    """A predictor that prices a configuration by its batch size alone."""

    def __init__(self, template: Prediction) -> None:
        self.template = template
        self.seen: list[int] = []

    def predict(self, config: ServingConfig, workload: Workload) -> Prediction:
        self.seen.append(config.max_num_seqs)
        assert self.template.metrics is not None
        scaled = dataclasses.replace(
            self.template.metrics, output_throughput_tok_s=1e6 * config.max_num_seqs
        )
        return Prediction(scaled, 0.0, 0.0, "by batch")


def test_screen_enqueues_the_best_proposal_and_stores_nothing_else(spec: StudySpec) -> None:
    runner = SimRunner()
    storage = InMemoryStorage()
    config = StudyConfig.of(spec, n_trials=2, storage="memory", study_name="s", quiet=True)
    run_study(config, runner, storage=storage)  # the baseline and one more
    study = optuna.load_study(study_name="s", storage=storage)
    before = len(study.trials)
    baseline = study.trials[0]
    template = SimPredictor().predict(
        _config(spec, baseline.params), trial_workload(spec)
    )  # real metrics, throughput replaced by the batch size
    predictor = ByBatch(template)
    screen = Screen(spec, predictor, trial_workload(spec), "tpe", seed=3, candidates=6)
    best = screen.enqueue_best(study)
    assert best is not None and len(predictor.seen) >= 1
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == before + 1, "only the chosen one is added"
    waiting = trials[-1]
    assert waiting.state == TrialState.WAITING
    assert waiting.user_attrs[SCREENED]["candidates"] == 6
    assert best.score > 0 and best.point is not None
    assert best.point[0] == 1e6 * max(predictor.seen), "same latency: the largest batch wins"
    assert dict(waiting.system_attrs["fixed_params"]) == best.params


def _config(spec: StudySpec, params: dict[str, SettingValue]) -> ServingConfig:
    resolved = resolve_candidate(candidate_from_params(spec, params), spec.node_group)
    assert resolved.config is not None
    return resolved.config


def test_screened_simulated_study_holds_only_what_ran(spec: StudySpec) -> None:
    storage = InMemoryStorage()
    config = StudyConfig.of(
        spec,
        n_trials=6,
        storage="memory",
        study_name="screened",
        quiet=True,
        anchors=False,
        screening=True,
        screening_candidates=4,
    )
    assert study_predictor(config) is not None
    assert run_study(config, SimRunner(), storage=storage) == 0
    trials = optuna.load_study(study_name="screened", storage=storage).get_trials()
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    screened = [t for t in trials if SCREENED in t.user_attrs]
    assert len(screened) >= 5, "every sampled trial after the baseline was screened"
    assert all(t.user_attrs[SCREENED]["candidates"] == 4 for t in screened)
    ran = [t for t in trials if not str(t.user_attrs.get("crash_class", "")).startswith("rej")]
    assert len(ran) == 6


def test_real_runners_and_grid_are_not_screened(spec: StudySpec) -> None:
    from optimizer.config import RunnerChoice

    local = StudyConfig.of(spec, runner=RunnerChoice("local"), screening=True)
    grid = StudyConfig.of(spec, sampler="grid", screening=True)
    off = StudyConfig.of(spec, screening=False)
    assert study_predictor(local) is None
    assert study_predictor(grid) is None
    assert study_predictor(off) is None


def test_goodput_studies_score_the_goodput_gain() -> None:
    goodput = load_spec("qwen3-moe-goodput.yaml")
    assert goodput.objectives.goodput is not None
    sure = Prediction(None, 0.0, 0.0, "test")
    shaky = Prediction(None, 0.0, 0.5, "test")
    candidates = [
        Scored({"a": 1}, sure, (100.0, 50.0)),
        Scored({"a": 2}, sure, (300.0, 900.0)),  # more goodput at any latency: goodput decides
        Scored({"a": 3}, shaky, (400.0, 10.0)),  # even more, but a coin flip whether it runs
        Scored({"a": 4}, sure, None),  # breaks an SLO
    ]
    scored = score_all(candidates, goodput, [])
    assert [c.score for c in scored] == [100.0, 300.0, 200.0, 0.0]
    assert choose(scored) is scored[1]


def test_the_simulator_predicts_what_the_simulated_trial_measures(spec: StudySpec) -> None:
    config = _config(spec, baseline_params(spec))
    workload = trial_workload(spec)
    predictor = SimPredictor()
    prediction = predictor.predict(config, workload)
    outcome = SimRunner().simulate_config(config, workload)
    assert prediction.metrics == outcome.metrics
    assert prediction.crash_probability == 0.0 and prediction.log_sigma == 0.0
    assert predictor.predict(config, workload) == prediction
    assert predictor.simulations == 1, "a repeat is not simulated again"


def _done(number: int, params: dict[str, int], values: tuple[float, float]) -> FrozenTrial:
    trial = optuna.trial.create_trial(
        params=params,
        distributions={"a": optuna.distributions.CategoricalDistribution([1, 2, 3])},
        values=list(values),
    )
    trial.number = number
    return trial


def test_a_completed_configuration_is_worth_nothing_however_wide_its_spread(
    spec: StudySpec,
) -> None:
    history = [_done(n, {"a": n + 1}, point) for n, point in enumerate(FRONT[:2])]
    spread = Prediction(None, 0.2, 0.0, "noisy")  # a predictor with noise, as in simulated studies
    again = Scored({"a": 2}, spread, FRONT[1])  # the front point the study measured
    fresh = Scored({"a": 3}, spread, FRONT[1])  # the same prediction, never run
    scored = score_all([again, fresh], spec, history)
    assert scored[0].ran and scored[0].score == 0.0
    assert not scored[1].ran and scored[1].score > 0.0, "draws around a front point add area"
    assert choose(scored) is scored[1]


def test_when_nothing_is_worth_anything_a_configuration_not_run_yet_is_chosen() -> None:
    ok = Prediction(None, 0.0, 0.0, "test")
    ran = Scored({"a": 1}, ok, (1.0, 1.0), ran=True)
    new = Scored({"a": 2}, ok, (1.0, 1.0))
    assert choose([ran, new]) is new
    assert choose([ran]) is ran, "all run before: the sampler's first pick"


def test_noisy_simulated_screening_scores_a_measured_configuration_zero(spec: StudySpec) -> None:
    storage = InMemoryStorage()
    config = StudyConfig.of(spec, n_trials=2, storage="memory", study_name="n", quiet=True)
    run_study(config, SimRunner(), storage=storage)
    history = optuna.load_study(study_name="n", storage=storage).get_trials()
    done = [t for t in history if t.state == TrialState.COMPLETE]
    assert done
    predictor = SimPredictor(Noise.typical())
    candidates = []
    for trial in done:
        prediction = predictor.predict(_config(spec, trial.params), trial_workload(spec))
        assert prediction.log_sigma > 0
        candidates.append(
            Scored(dict(trial.params), prediction, predicted_point(prediction, spec))
        )
    assert all(c.ran and c.score == 0.0 for c in score_all(candidates, spec, history))


def test_a_configuration_running_on_another_worker_is_worth_nothing(spec: StudySpec) -> None:
    running = optuna.trial.create_trial(
        params={"a": 3},
        distributions={"a": optuna.distributions.CategoricalDistribution([1, 2, 3])},
        state=TrialState.RUNNING,
    )
    history = [_done(0, {"a": 1}, FRONT[0]), running]
    beyond = Prediction(None, 0.0, 0.0, "test")
    scored = score_all([Scored({"a": 3}, beyond, (1000.0, 5.0))], spec, history)
    assert scored[0].ran and scored[0].score == 0.0
    fresh = score_all([Scored({"a": 2}, beyond, (1000.0, 5.0))], spec, history)
    assert fresh[0].score > 0.0, "the same prediction, not in flight, dominates the front"


class RiskyLargeBatches(FeasibilityChecker):
    """Pre-flight that launches everything, giving large batches 90% crash odds."""

    def check(self, resolved, params, distributions, history):  # type: ignore[no-untyped-def]
        config = resolved.config
        odds = 0.9 if config is not None and config.max_num_seqs >= 256 else None
        return Verdict(True, crash_probability=odds)


def test_pre_flight_crash_odds_lower_a_proposals_worth(spec: StudySpec) -> None:
    runner = SimRunner()
    storage = InMemoryStorage()
    config = StudyConfig.of(spec, n_trials=2, storage="memory", study_name="r", quiet=True)
    run_study(config, runner, storage=storage)
    study = optuna.load_study(study_name="r", storage=storage)
    template = SimPredictor().predict(_config(spec, study.trials[0].params), trial_workload(spec))
    screen = Screen(
        spec,
        ByBatch(template),
        trial_workload(spec),
        "tpe",
        seed=3,
        candidates=12,
        checker=RiskyLargeBatches(spec),
    )
    proposals, _ = screen.propose(study)
    predicted = [c.prediction for c in proposals if c.prediction is not None]
    launched = [p for p in predicted if p.metrics is not None]  # not refused by the engine
    assert launched
    for p in launched:
        assert p.metrics is not None
        large = p.metrics.output_throughput_tok_s >= 1e6 * 256
        assert p.crash_probability == (0.9 if large else 0.0)


def test_with_crash_odds_keeps_the_larger_probability() -> None:
    sure = Prediction(None, 0.1, 0.3, "test")
    assert with_crash_odds(sure, 0.1) is sure
    assert with_crash_odds(sure, 0.7).crash_probability == 0.7
    assert with_crash_odds(sure, 0.7).log_sigma == 0.1

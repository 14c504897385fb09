"""The conditional space: engine first, then only that engine's settings, conditions respected."""

from __future__ import annotations

import optuna
import pytest

from optimizer.space import baseline_params, candidate_from_params, suggest
from optimizer.spec.models import StudySpec
from runners.engines import get_engine


@pytest.fixture(scope="module")
def sampled(spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=3)
    )
    for _ in range(300):
        trial = study.ask()
        suggest(trial, spec)
        study.tell(trial, [0.0, 0.0])
    return study.trials


def test_no_setting_of_another_engine_appears(sampled: list[optuna.trial.FrozenTrial]) -> None:
    engines = {t.params["engine"] for t in sampled}
    assert engines == {"vllm", "sglang", "trtllm"}
    for trial in sampled:
        engine = trial.params["engine"]
        names = [n for n in trial.params if n not in ("engine", "model_variant")]
        assert names, "every trial carries engine settings"
        assert all(n.startswith(f"{engine}.") for n in names), names


def test_token_budget_alternative_follows_chunked_prefill(
    sampled: list[optuna.trial.FrozenTrial],
) -> None:
    vllm_trials = [t for t in sampled if t.params["engine"] == "vllm"]
    for trial in vllm_trials:
        chunked = trial.params["vllm.enable-chunked-prefill"]
        assert ("vllm.max-num-batched-tokens[0]" in trial.params) is chunked
        assert ("vllm.max-num-batched-tokens[1]" in trial.params) is (not chunked)
    assert {t.params["vllm.enable-chunked-prefill"] for t in vllm_trials} == {True, False}


def test_data_parallel_only_where_it_fits(sampled: list[optuna.trial.FrozenTrial]) -> None:
    for trial in sampled:
        if trial.params["engine"] != "vllm":
            continue
        has_dp = "vllm.data-parallel-size" in trial.params
        assert has_dp is (trial.params["vllm.tensor-parallel-size"] == 4)


def test_sglang_ep_never_exceeds_tp(sampled: list[optuna.trial.FrozenTrial]) -> None:
    for trial in sampled:
        if trial.params["engine"] != "sglang":
            continue
        tp = trial.params["sglang.tp-size"]
        (ep_name,) = [n for n in trial.params if n.startswith("sglang.ep-size")]
        assert trial.params[ep_name] in (1, tp)


def test_candidate_values_are_valid_engine_values(
    spec: StudySpec, sampled: list[optuna.trial.FrozenTrial]
) -> None:
    for trial in sampled:
        candidate = candidate_from_params(spec, trial.params)
        table = get_engine(candidate.engine).settings()
        for name, value in candidate.settings:
            assert table[name].check(value) is None, (name, value)
        assert candidate.checkpoint.endswith("-FP8") == (candidate.weight_dtype == "fp8")


def test_replayed_params_give_the_same_candidate(spec: StudySpec) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(20):
        trial = study.ask()
        candidate = suggest(trial, spec)
        assert candidate_from_params(spec, trial.params) == candidate
        study.tell(trial, [1.0, 1.0])


def test_baseline_is_engine_defaults_with_tp8(spec: StudySpec) -> None:
    params = baseline_params(spec)
    assert params["engine"] == "vllm"
    assert params["model_variant"] == "bf16"
    assert params["vllm.tensor-parallel-size"] == 8
    assert params["vllm.max-num-seqs"] == 1024  # vLLM 0.33 default on an 80 GB H100
    assert params["vllm.max-num-batched-tokens[0]"] == 8192
    assert params["vllm.gpu-memory-utilization"] == 0.92
    assert params["vllm.max-model-len"] == 262144  # the 2507 checkpoint's context
    candidate = candidate_from_params(spec, params)
    assert candidate.engine == "vllm"

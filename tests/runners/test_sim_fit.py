"""Calibration from measured runs (`runners.sim.fit`): the fit recovers the factors of the
engine that made the runs, says how sure it is, accepts one run, refuses contradictions, and
`predict` carries the uncertainty into its predictions."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from runners.errors import CalibrationError
from runners.sim import simulate
from runners.sim.fit import (
    FACTORS,
    MAX_REQUESTS,
    PRIOR_SIGMA,
    Observation,
    fit_calibration,
    predict,
)
from runners.sim.profile import EngineScales
from tests.runners.calib_runs import config, measured, varied_runs, workload

TRUTH = EngineScales(
    compute_efficiency=1.3, memory_bandwidth_efficiency=0.8, step_overhead=2.0, usable_memory=1.0
)


def within_sigma(fit_value: tuple[float, float], truth: float, sigmas: float = 3.0) -> bool:
    factor, sigma = fit_value
    return abs(math.log(factor) - math.log(truth)) <= sigmas * sigma + 0.02


def test_the_fit_recovers_the_factors_of_the_engine_that_made_the_runs() -> None:
    fit = fit_calibration(varied_runs(TRUTH, count=6))
    assert not fit.poor, fit.note
    assert fit.n_runs == 6
    for name in FACTORS:
        assert within_sigma(fit.corrections[f"vllm.{name}"], getattr(TRUTH, name)), name
    # the two factors these runs show are pinned down, not left at the prior
    compute, compute_sigma = fit.corrections["vllm.compute_efficiency"]
    bandwidth, bandwidth_sigma = fit.corrections["vllm.memory_bandwidth_efficiency"]
    assert compute == pytest.approx(1.3, rel=0.08) and compute_sigma < 0.15
    assert bandwidth == pytest.approx(0.8, rel=0.08) and bandwidth_sigma < 0.15
    assert fit.error["total_token_throughput_tok_s"] < 0.05
    assert (
        fit.max_error["total_token_throughput_tok_s"] >= fit.error["total_token_throughput_tok_s"]
    )


def test_predictions_after_the_fit_match_an_unseen_run_better_than_the_plain_simulator() -> None:
    slow = EngineScales(compute_efficiency=0.7, memory_bandwidth_efficiency=0.75)
    fit = fit_calibration(varied_runs(slow, count=4))
    unseen = measured(config(max_num_seqs=32), workload(768, 192), slow, "unseen")
    assert unseen.metrics is not None
    actual = unseen.metrics.total_token_throughput_tok_s
    calibrated = predict(unseen.config, unseen.workload, fit)
    plain = predict(unseen.config, unseen.workload, None)
    assert calibrated.metrics is not None and plain.metrics is not None
    calibrated_error = abs(calibrated.metrics.total_token_throughput_tok_s / actual - 1)
    plain_error = abs(plain.metrics.total_token_throughput_tok_s / actual - 1)
    assert calibrated_error < 0.05 and calibrated_error < plain_error / 3
    assert calibrated.log_sigma < plain.log_sigma
    assert calibrated.crash_probability < 0.05  # far from every memory boundary
    assert plain.source == "shipped calibration" and "4 runs" in calibrated.source


def test_one_run_is_valid_and_less_certain_than_many() -> None:
    runs = varied_runs(TRUTH, count=5)
    one = fit_calibration(runs[:1])
    many = fit_calibration(runs)
    assert one.n_runs == 1 and not one.poor, one.note
    for name in FACTORS:
        assert one.corrections[f"vllm.{name}"][1] <= PRIOR_SIGMA[name] + 1e-9
        assert many.corrections[f"vllm.{name}"][1] <= one.corrections[f"vllm.{name}"][1] + 1e-9
    bandwidth_one = one.corrections["vllm.memory_bandwidth_efficiency"][1]
    assert many.corrections["vllm.memory_bandwidth_efficiency"][1] < bandwidth_one
    # one run moves the factor it shows toward the truth
    assert one.corrections["vllm.compute_efficiency"][0] > 1.1


def test_an_engine_without_runs_keeps_the_prior_and_its_uncertainty() -> None:
    fit = fit_calibration(varied_runs(TRUTH, count=2))
    assert not any(key.startswith("sglang.") for key in fit.corrections)
    cfg, load = config("sglang"), workload()
    calibrated = predict(cfg, load, fit)
    plain = predict(cfg, load, None)
    assert calibrated.metrics is not None and plain.metrics is not None
    assert calibrated.metrics.total_token_throughput_tok_s == pytest.approx(
        plain.metrics.total_token_throughput_tok_s
    )
    assert calibrated.log_sigma > predict(config(), load, fit).log_sigma


def test_contradictory_runs_are_an_error_naming_both() -> None:
    run = measured(config(), workload(), TRUTH, "runs.csv row 3")
    assert run.metrics is not None
    halved = replace(
        run.metrics, total_token_throughput_tok_s=run.metrics.total_token_throughput_tok_s / 2
    )
    other = Observation(run.config, run.workload, halved, "runs.csv row 9")
    with pytest.raises(CalibrationError, match=r"row 9 and runs.csv row 3.*contradictory"):
        fit_calibration([run, other])
    # the same run twice, within noise, is fine
    assert fit_calibration([run, replace(run, label="runs.csv row 4")]).n_runs == 2


def test_no_runs_is_an_error() -> None:
    with pytest.raises(CalibrationError, match="no runs"):
        fit_calibration([])


def test_runs_the_truth_cannot_explain_make_a_poor_fit() -> None:
    runs = varied_runs(TRUTH, count=3)
    # the third run claims ten times the throughput with the same latencies
    third = runs[2]
    assert third.metrics is not None
    boosted = replace(
        third.metrics,
        total_token_throughput_tok_s=third.metrics.total_token_throughput_tok_s * 10,
    )
    fit = fit_calibration([runs[0], runs[1], replace(third, metrics=boosted)])
    assert fit.poor and "poor fit" in fit.note
    assert fit.max_error["total_token_throughput_tok_s"] > 0.5


def test_a_crashed_run_lowers_the_usable_memory() -> None:
    # with 30% of the memory its KV cache holds about one 40,960-token sequence: an engine
    # with 12% less usable memory refuses a length the shipped calibration accepts
    cfg = config(max_model_len=40960, gpu_memory_utilization=0.3)
    small = replace(TRUTH, usable_memory=0.88)
    crashed = measured(cfg, workload(prompts=20), small, "trial 4")
    assert crashed.metrics is None
    assert simulate(cfg, workload(prompts=20)).records is not None
    shipped_odds = predict(cfg, workload(prompts=20), None).crash_probability
    assert shipped_odds < 0.5
    fit = fit_calibration([crashed, *varied_runs(small, count=2)])
    usable, sigma = fit.corrections["vllm.usable_memory"]
    assert usable < 1.0 and sigma <= PRIOR_SIGMA["usable_memory"]
    # the memory model's odds under the fitted usable memory: now more likely than not
    assert predict(cfg, workload(prompts=20), fit).crash_probability > max(0.5, shipped_odds)


def test_a_long_run_is_fitted_on_a_shortened_simulation_without_losing_accuracy() -> None:
    long_runs = [
        measured(config(), workload(1024, 128, prompts=3 * MAX_REQUESTS), TRUTH, "long 1"),
        measured(config(), workload(256, 384, prompts=2 * MAX_REQUESTS), TRUTH, "long 2"),
    ]
    fit = fit_calibration(long_runs)
    assert not fit.poor, fit.note
    assert within_sigma(fit.corrections["vllm.compute_efficiency"], 1.3)
    assert within_sigma(fit.corrections["vllm.memory_bandwidth_efficiency"], 0.8)
    # errors are of full-length simulations at the fitted factors
    assert fit.max_error["total_token_throughput_tok_s"] < 0.05


def test_a_prediction_counts_the_gpus_of_every_replica_as_the_simulated_runner_does() -> None:
    two = replace(config(tensor_parallel_size=4), replicas=2)
    prediction = predict(two, workload(512, 64), None)
    assert prediction.metrics is not None
    assert prediction.metrics.num_gpus == 8

"""The recommendation rule: SLO-feasible, never beaten within noise, within noise of the best
throughput the lowest latency (or the user's rule), ties reported; the noise it allows for; and
on every shipped space the study's closing lines recommend such a trial."""

from __future__ import annotations

import dataclasses
import io
import statistics
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from optimizer.config import StudyConfig
from optimizer.loop import run_study
from optimizer.measurements import Measurement
from optimizer.noise import ESTIMATE, NoiseEstimate, noise_from_repeats, noise_of
from optimizer.objectives import objective_values
from optimizer.recommend import (
    RULES,
    beats_within_noise,
    choose,
    recommend,
    recommended,
    study_recommendation,
)
from optimizer.record import TrialRecord, read_all
from optimizer.space import baseline_params, candidate_from_params
from optimizer.spec.load import SEARCH_SPACES_DIR, load_spec
from runners.bench.metrics import summarize
from runners.engines import resolve_candidate
from runners.sim import Noise, simulate
from runners.sim.runner import SimRunner


def record(number: int, tput: float, lat: float, feasible: bool = True) -> TrialRecord:
    return TrialRecord(
        number=number,
        state=TrialState.COMPLETE,
        params={},
        values=(tput, lat),
        engine="vllm",
        weight_dtype="bf16",
        serve_command=f"serve {number}",
        constraints={"p99_ttft_ms <= 2000": -1.0 if feasible else 5.0},
    )


# the issue's example: trial 1 leads on throughput by 0.2%, trial 52 has a quarter the TPOT
ISSUE = [record(0, 4010.6, 231.4), record(1, 5305.9, 300.9), record(52, 5293.6, 80.8),
         record(57, 5286.9, 52.2), record(9, 4800.0, 40.0)]  # fmt: skip


def test_within_noise_of_the_best_throughput_the_lowest_latency_wins() -> None:
    rec = recommend(ISSUE)
    assert rec is not None
    assert rec.pick.number == 57 and rec.best.number == 1
    assert {r.number for r in rec.contenders} == {1, 52, 57}
    assert beats_within_noise(ISSUE[3], ISSUE[1], ESTIMATE)  # 57 beats 1 within noise
    assert not beats_within_noise(ISSUE[1], ISSUE[3], ESTIMATE)
    why = rec.why("output throughput (tok/s)", "p99 TPOT (ms)")
    assert "within noise of the highest (trial 1, 5,305.9; this one -0.4%)" in why
    assert "of the 3 trials that are, it has the lowest p99 TPOT (ms)" in why


def test_other_rules_and_ties() -> None:
    latency = recommend(ISSUE, "latency")
    assert latency is not None and latency.pick.number == 9
    balanced = recommend(ISSUE, "balanced")
    assert balanced is not None and balanced.pick.number == 9  # 120 tok/s per ms
    tied = [record(1, 1000.0, 50.0), record(2, 990.0, 50.5), record(3, 700.0, 10.0)]
    rec = recommend(tied)
    assert rec is not None and rec.pick.number == 1
    assert [t.number for t in rec.ties] == [2]
    assert "Tied within noise on both objectives: trial 2." in rec.why("t", "l")


def test_only_trials_within_their_slos_and_nothing_when_none() -> None:
    records = [record(1, 9000.0, 10.0, feasible=False), record(2, 100.0, 90.0)]
    assert choose(records) is not None and choose(records).number == 2  # type: ignore[union-attr]
    assert recommend([record(1, 9000.0, 10.0, feasible=False)]) is None


points = st.lists(
    st.tuples(st.floats(1.0, 1e4), st.floats(0.5, 1e3), st.booleans()), min_size=1, max_size=25
)


@settings(max_examples=300, deadline=None)
@given(points, st.sampled_from(RULES), st.floats(0.001, 0.2))
def test_no_trial_ever_beats_the_pick_within_noise(
    cloud: list[tuple[float, float, bool]], rule: str, sd: float
) -> None:
    records = [record(i, t, lat, ok) for i, (t, lat, ok) in enumerate(cloud)]
    noise = NoiseEstimate(sd, sd * 1.5, "test")
    rec = recommend(records, rule, noise)  # type: ignore[arg-type]
    if not any(ok for *_, ok in cloud):
        assert rec is None
        return
    assert rec is not None and rec.pick.feasible
    assert not any(beats_within_noise(r, rec.pick, noise) for r in records if r.feasible)


def repeat(subject: str, label: int, tput: float, lat: float) -> Measurement:
    return Measurement("repeat", subject, None, str(label), "cmd", throughput=tput, latency=lat)


def test_noise_from_repeats_leaves_out_each_repeats_prompts_and_a_cliff() -> None:
    """Repeat i of every configuration shares its prompts: a sample that is 10% harder for all
    is no noise between them; one configuration jumping 9x once does not widen every band."""
    prompts = (1.0, 0.9, 1.05, 0.95, 1.1)
    jitter = np.exp(np.random.default_rng(7).normal(0.0, 0.015, (4, 5)))
    runs = []
    for row, (name, level) in enumerate((("a", 100.0), ("b", 200.0), ("c", 150.0), ("d", 90.0))):
        for i, p in enumerate(prompts):
            jump = 9.0 if (name, i) == ("c", 2) else 1.0
            runs.append(repeat(name, i, level * p * jitter[row, i], 50.0 * p * jump))
    noise = noise_from_repeats(runs)
    assert noise is not None and "4 configurations on 5 shared prompt samples" in noise.source
    assert 0.005 < noise.throughput < 0.03  # the jitter (1.5% sd), not the prompts (8%)
    assert noise.latency < 0.01  # the one jump is an outlier
    alone = noise_from_repeats([repeat("a", i, 100.0 + 2 * i, 10.0) for i in range(3)])
    assert alone is not None and alone.throughput == pytest.approx(2 / 102)
    assert noise_of([]) is ESTIMATE
    assert noise_of(runs, 0.05).throughput == 0.05


def test_the_estimate_matches_the_simulators_run_to_run_noise() -> None:
    """ESTIMATE (2% per objective) against the typical noise model re-running the qwen3-moe
    baseline on the same prompts: within a factor of two."""
    spec = load_spec("qwen3-moe.yaml")
    candidate = candidate_from_params(spec, baseline_params(spec))
    config = resolve_candidate(candidate, spec.node_group).config
    assert config is not None
    values = []
    for seed in range(8):
        result = simulate(config, spec.workload_spec, seed=100 + seed, noise=Noise.typical())
        assert result.records is not None
        metrics = summarize(result.records, num_gpus=config.replicas * config.gpus_per_replica)
        values.append(objective_values(metrics, spec.objectives))
    for index, estimate in ((0, ESTIMATE.throughput), (1, ESTIMATE.latency)):
        spread = [v[index] for v in values]
        cv = statistics.stdev(spread) / statistics.fmean(spread)
        assert estimate / 2 <= cv <= estimate * 2


SHIPPED = sorted(SEARCH_SPACES_DIR.glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("space", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_on_every_shipped_space_the_headline_is_never_beaten_within_noise(
    space: Path, tmp_path: Path
) -> None:
    spec = load_spec(space)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = StudyConfig.of(spec, storage=url, n_trials=16 if "tiny" not in space.stem else 12)
    out = io.StringIO()
    with redirect_stdout(out):
        assert run_study(config, SimRunner()) == 0
    study = optuna.load_study(study_name=spec.name, storage=url)
    rec = study_recommendation(study)
    assert rec is not None
    pick = rec.pick
    assert f"Recommended: trial {pick.number} " in out.getvalue()
    assert recommended(study) == pick
    eligible = [r for r in read_all(study, (TrialState.COMPLETE,)) if r.feasible]
    assert len(eligible) == rec.eligible > 1
    beaters = [r.number for r in eligible if beats_within_noise(r, pick, rec.noise)]
    assert beaters == [], f"trial {pick.number} is beaten within noise by {beaters}"


def test_the_export_api_keeps_its_shape() -> None:
    """`recommended(study) -> TrialRecord | None` and `choose(records)` (export, retune)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert recommended(study) is None
    assert choose([]) is None
    assert dataclasses.is_dataclass(choose(ISSUE))

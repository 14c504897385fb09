"""Goodput, presets and several workloads: the space file's forms and mistakes, the values a
trial is worth, the stored curves, and the Done-when run: a goodput study on qwen3-moe beats
the baseline's goodput and validate's rate sweep confirms the recommended trial's knee."""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import optuna
import pytest

from optimizer.config import StopRule, StudyConfig
from optimizer.errors import SpecError
from optimizer.identity import space_sections
from optimizer.loop import STOP_REASON, run_study
from optimizer.objectives import load_search, trial_values, trial_workload
from optimizer.recommend import study_recommendation
from optimizer.record import baseline_record
from optimizer.report.validation import knee_verdict
from optimizer.spec.load import load_spec
from optimizer.validate import Validator
from runners.sim import Noise
from runners.sim.runner import SimRunner
from runners.types import (
    Distribution,
    LoadCurve,
    LoadProbe,
    Metrics,
    SloLimit,
    TrialOutcome,
    WorkloadRun,
)

Write = Callable[[dict[str, object]], Path]
GOODPUT = {"preset": "goodput", "slos": [{"metric": "p99_ttft_ms", "max": 1000}]}


def with_objectives(shipped: dict[str, object], objectives: object) -> dict[str, object]:
    return {**shipped, "objectives": objectives}


def test_a_preset_fills_in_the_objectives_and_the_files_fields_win(
    shipped_space: dict[str, object], write_space: Write
) -> None:
    spec = load_spec(write_space(with_objectives(shipped_space, GOODPUT)))
    objectives = spec.objectives
    assert objectives.throughput.metric == "request_throughput"
    assert (objectives.latency.metric, objectives.latency.percentile) == ("ttft", 99)
    assert objectives.goodput is not None and objectives.goodput.load == "request_rate"
    own = {**GOODPUT, "throughput": {"metric": "output_throughput", "scope": "gpu"}}
    spec = load_spec(write_space(with_objectives(shipped_space, own)))
    assert spec.objectives.throughput.scope == "gpu"
    assert spec.objectives.goodput is not None
    search = load_search(spec.objectives)
    assert search is not None and search.slos == (SloLimit("p99_ttft_ms", max=1000.0),)
    assert trial_workload(spec).load_search == search
    latency = load_spec(write_space(with_objectives(shipped_space, {"preset": "latency"})))
    assert latency.objectives.latency.metric == "e2el" and latency.objectives.goodput is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objectives": {"preset": "goodput"}}, "objectives.slos: goodput is the throughput"),
        ({"objectives": {"preset": "fastest"}}, "objectives.preset: 'fastest' is not one of"),
        ({"recommendation": {"noise": 3}}, "recommendation.noise: 3 is not a relative"),
        ({"recommendation": {"rule": "cheapest"}}, "recommendation.rule: must be"),
        (
            {"workloads": [{"name": "w", "dataset": "sharegpt-like", "num_prompts": 10}]},
            "workloads: give either workload (one) or workloads",
        ),
        (
            {"objectives": {**GOODPUT, "goodput": {"growth": 1}}},
            "objectives.goodput.growth: Input should be greater than 1",
        ),
    ],
)
def test_mistakes_name_the_field(
    shipped_space: dict[str, object], write_space: Write, change: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError) as raised:
        load_spec(write_space({**shipped_space, **change}))
    assert message in str(raised.value)


def several(shipped: dict[str, object], **objectives: object) -> dict[str, object]:
    space = {k: v for k, v in shipped.items() if k != "workload"}
    space["workloads"] = [
        {"name": "chat", "dataset": "sharegpt-like", "num_prompts": 200, "weight": 3},
        {"name": "long", "dataset": "random", "num_prompts": 50, "input_len": 4000,
         "output_len": 100},
    ]  # fmt: skip
    space["objectives"] = {**dict(shipped["objectives"]), **objectives}  # type: ignore[call-overload]
    return space


def test_several_workloads_the_first_stands_for_workload_and_names_are_unique(
    shipped_space: dict[str, object], write_space: Write
) -> None:
    spec = load_spec(write_space(several(shipped_space)))
    assert spec.workload.name == "chat"
    assert [(w.name, weight) for w, weight in spec.weighted_workloads] == [
        ("chat", 3.0),
        ("long", 1.0),
    ]
    sent = trial_workload(spec)
    assert sent.name == "chat" and [w.name for w in sent.also] == ["long"]
    assert "workloads" in space_sections(spec)
    twice = several(shipped_space)
    twice["workloads"][1]["name"] = "chat"  # type: ignore[index]
    with pytest.raises(SpecError, match=r"workloads\.1\.name: 'chat' is given twice"):
        load_spec(write_space(twice))


def metrics(tput: float, p99: float) -> Metrics:
    dist = Distribution(p99 / 2, p99 / 2, 1.0, p99, p99, p99)
    return Metrics(100, 0, 10.0, 1000, 1000, tput / 100, tput, tput * 2, 8,
                   dist, dist, dist, dist)  # fmt: skip


def test_weighted_or_worst_and_every_slo_on_every_workload(
    shipped_space: dict[str, object], write_space: Write
) -> None:
    slos = [{"metric": "p99_ttft_ms", "max": 500}]
    outcome = TrialOutcome(
        "ok",
        metrics=metrics(3000.0, 100.0),
        workloads=(WorkloadRun("chat", metrics(3000.0, 100.0)),
                   WorkloadRun("long", metrics(1000.0, 900.0))),
    )  # fmt: skip
    weighted = load_spec(write_space(several(shipped_space, slos=slos)))
    worth = trial_values(outcome, weighted)
    assert worth.values == pytest.approx(((3 * 3000 + 1000) / 4, (3 * 100 + 900) / 4))
    assert worth.constraints == {"p99_ttft_ms <= 500": pytest.approx(400.0)}
    worst = load_spec(write_space(several(shipped_space, slos=slos, combine="worst")))
    assert trial_values(outcome, worst).values == (1000.0, 900.0)


def test_goodput_is_zero_when_no_load_held(
    shipped_space: dict[str, object], write_space: Write
) -> None:
    spec = load_spec(write_space(with_objectives(shipped_space, GOODPUT)))
    broken = LoadProbe(2.0, metrics(500.0, 3000.0), ("p99_ttft_ms <= 1000",))
    run = WorkloadRun("sharegpt-1000", broken.metrics, LoadCurve("request_rate", (broken,)))
    worth = trial_values(TrialOutcome("ok", metrics=broken.metrics, workloads=(run,)), spec)
    assert worth.values == (0.0, 3000.0)
    assert worth.constraints["p99_ttft_ms <= 1000"] > 0


SHIPPED_IDENTITY = {  # objectives and workload hashes before this change (older studies)
    "qwen3-moe.yaml": ("4d62f72c0c0f", "96390f09692f"),
    "qwen3-8b-latency.yaml": ("7eab4872fa4b", "fcc5267e5266"),
    "qwen3-32b-a100.yaml": ("4d62f72c0c0f", "79399bfa472e"),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_IDENTITY))
def test_studies_of_older_space_files_keep_their_identity(name: str) -> None:
    sections = space_sections(load_spec(name))
    assert (sections["objectives"], sections["workload"]) == SHIPPED_IDENTITY[name]
    assert "workloads" not in sections


def test_the_knee_verdict() -> None:
    from optimizer.measurements import RATE_LEVELS, Measurement

    def sweep(breaks_from: float) -> list[Measurement]:
        return [
            Measurement("rate", "trial 3", 3, f"{10 * level:g}", "cmd", 1.0, 1.0,
                        broken="p99_ttft_ms <= 1000" if level >= breaks_from else "")
            for level in RATE_LEVELS
        ]  # fmt: skip

    assert "**The knee is confirmed**" in knee_verdict(sweep(1.1))
    assert "an SLO breaks below the knee" in knee_verdict(sweep(0.75))
    assert "still hold well above it" in knee_verdict(sweep(math.inf))


@pytest.mark.slow
def test_done_when_a_goodput_study_beats_the_baseline_and_the_rate_sweep_confirms_the_knee(
    tmp_path: Path,
) -> None:
    spec = load_spec("qwen3-moe-goodput.yaml")
    url = f"sqlite:///{tmp_path / 'goodput.db'}"
    out = io.StringIO()
    with redirect_stdout(out):
        assert run_study(StudyConfig.of(spec, storage=url, n_trials=24), SimRunner()) == 0
    study = optuna.load_study(study_name=spec.name, storage=url)
    base = baseline_record(study)
    rec = study_recommendation(study)
    assert base is not None and rec is not None
    assert rec.pick.throughput > 1.2 * base.throughput  # goodput, req/s at the SLOs
    run = rec.pick.workload_runs[0]
    assert run.knee is not None and math.isfinite(run.knee.load)
    assert run.knee.throughput == pytest.approx(rec.pick.throughput)
    assert "at the knee:" in out.getvalue()
    validator = Validator(spec, study, SimRunner(noise=Noise.typical()))
    picked = validator.front()[0]
    assert picked.trial == rec.pick.number
    sweep = validator.run_rate_sweep(validator.baseline(), picked)
    mine = [m for m in sweep if m.subject == picked.name]
    assert "**The knee is confirmed**" in knee_verdict(mine)
    # the baseline breaks the SLOs at the recommended trial's knee
    assert any(m.broken for m in sweep if m.subject == "baseline" and m.label == mine[3].label)
    assert dataclasses.is_dataclass(run)


@pytest.mark.slow
def test_a_default_goodput_study_stops_when_its_best_goodput_settles(tmp_path: Path) -> None:
    """Without --n-trials a simulated goodput study is judged on its best goodput (the front's
    area keeps creeping at the low-latency end long after): with a time budget it cannot
    reach here, it stops because that plateaued, and says so."""
    spec = load_spec("qwen3-moe-goodput.yaml")
    url = f"sqlite:///{tmp_path / 'goodput.db'}"
    stop = StopRule(time_budget_s=3600.0, max_trials=80)  # the area rule alone runs to 80
    config = StudyConfig.of(spec, storage=url, screening=True, stop=stop)
    with redirect_stdout(io.StringIO()) as out:
        assert run_study(config, SimRunner()) == 0
    study = optuna.load_study(study_name=spec.name, storage=url)
    reason = str(study.user_attrs[STOP_REASON])
    assert "the best goodput" in reason and reason in out.getvalue()
    assert len([t for t in study.trials if t.state.is_finished()]) < stop.max_trials

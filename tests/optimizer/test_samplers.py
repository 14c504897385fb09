"""Every sampler drives the conditional space; GP explains itself without PyTorch; the grid
lattice respects conditions and never repeats a point."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from optimizer.config import StudyConfig
from optimizer.loop import run_study
from optimizer.record import count_trials
from optimizer.samplers import GridPlan, SamplerError, make_sampler
from optimizer.spec.models import SamplerName, StudySpec
from runners.sim.runner import SimRunner


def run(spec: StudySpec, sampler: SamplerName, n_trials: int) -> optuna.Study:
    storage = InMemoryStorage()
    config = StudyConfig.of(
        spec,
        storage="memory",
        study_name=f"s-{sampler}",
        n_trials=n_trials,
        sampler=sampler,
        seed=0,
        quiet=True,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_study(config, SimRunner(), storage=storage) == 0
    return optuna.load_study(study_name=f"s-{sampler}", storage=storage)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random", "grid"])
def test_sampler_runs_the_requested_trials(spec: StudySpec, sampler: SamplerName) -> None:
    study = run(spec, sampler, 8)
    assert count_trials(study).finished == 8
    assert study.trials[0].user_attrs["baseline"] is True
    if sampler == "grid":
        started = [t for t in study.trials if t.state.is_finished()]
        planned = [t for t in started if t.user_attrs.get("grid")]
        seeded = [t for t in started if t.user_attrs.get("baseline") or t.user_attrs.get("anchor")]
        assert planned, "grid points follow the baseline and the engine-default anchors"
        assert len(planned) + len(seeded) == len(started)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch not installed")
@pytest.mark.slow
def test_gp_sampler_runs_when_torch_is_installed(spec: StudySpec) -> None:
    study = run(spec, "gp", 6)
    assert count_trials(study).finished == 6


def test_gp_without_torch_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(SamplerError, match=r"--sampler gp needs PyTorch.*--sampler tpe"):
        make_sampler("gp", 0)


def test_tpe_is_multivariate_and_grouped() -> None:
    sampler = make_sampler("tpe", 0)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._multivariate and sampler._group and sampler._constant_liar


def test_grid_lattice_respects_conditions_without_repeats(spec: StudySpec) -> None:
    plan = GridPlan(spec, seed=7)
    seen: list[dict[str, object]] = []
    for _ in range(60):
        point = plan.next_point(seen)  # type: ignore[arg-type]
        assert point is not None
        assert point not in seen
        seen.append(point)
        if point["engine"] == "vllm":
            has_dp = "vllm.data-parallel-size" in point
            assert has_dp == (point["vllm.tensor-parallel-size"] == 4)
            assert point["vllm.max-num-seqs"] in (32, 102, 323, 1024)
        assert not [
            k for k in point if k.split(".")[0] not in ("engine", "model_variant", point["engine"])
        ]


def test_grid_and_others_prune_nothing_they_did_not_run(spec: StudySpec) -> None:
    study = run(spec, "random", 6)
    for trial in study.trials:
        if trial.state == TrialState.PRUNED:
            assert trial.user_attrs["crash_class"]


def _conditional_proposals(sampler: optuna.samplers.BaseSampler) -> list[dict[str, object]]:
    """Ten told trials, then three asked and left in flight (constant liar sees them)."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def sample(trial: optuna.Trial) -> tuple[float, float]:
        engine = trial.suggest_categorical("engine", ["a", "b"])
        x = trial.suggest_float(f"x_{engine}", 0.0, 1.0)
        n = trial.suggest_int("n", 1, 64, log=True)
        return x * n, (1 - x) + n / 64

    for _ in range(10):
        trial = study.ask()
        study.tell(trial, list(sample(trial)))
    in_flight = [study.ask() for _ in range(3)]
    for trial in in_flight:
        sample(trial)
    return [t.params for t in in_flight]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_tpe_reads_the_study_once_per_sample_and_proposes_what_optuna_tpe_does() -> None:
    ours = make_sampler("tpe", 7)
    plain = optuna.samplers.TPESampler(
        multivariate=True, group=True, constant_liar=True, n_startup_trials=5, seed=7
    )
    assert _conditional_proposals(ours) == _conditional_proposals(plain)

"""--warm-start re-evaluates another study's Pareto configurations, once, when they fit."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from optimizer.config import StudyConfig
from optimizer.loop import run_study
from optimizer.record import WARM_START
from optimizer.spec.load import load_spec
from optimizer.warmstart import misfit
from runners.sim.runner import SimRunner

Writer = Callable[[dict[str, Any]], Path]


def study_run(tmp_path: Path, name: str, n_trials: int, warm: str | None = None) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    config = StudyConfig.of(
        load_spec("qwen3-moe.yaml"),
        storage=url,
        study_name=name,
        n_trials=n_trials,
        sampler="random",
        seed=5,
        quiet=True,
        warm_start=warm,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_study(config, SimRunner()) == 0
    return optuna.load_study(study_name=name, storage=url)


def test_warm_start_re_evaluates_the_source_front_once(tmp_path: Path) -> None:
    source = study_run(tmp_path, "source", 14)
    front = {t.number: t.params for t in source.best_trials}
    assert front
    warm = study_run(tmp_path, "warm", 3 + len(front), warm="source")
    taken = {t.user_attrs[WARM_START]: t for t in warm.trials if WARM_START in t.user_attrs}
    assert set(taken) == {f"source#{n}" for n in front}
    for origin, trial in taken.items():
        assert trial.params == front[int(origin.split("#")[1])]
        assert "runner" in trial.user_attrs or trial.user_attrs.get("crash_class"), "re-run"
    again = study_run(tmp_path, "warm", 5 + len(front), warm="source")
    assert sum(WARM_START in t.user_attrs for t in again.trials) == len(front)


def test_misfit_explains_what_does_not_fit(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    spec = load_spec("qwen3-moe.yaml")
    params = {"engine": "vllm", "model_variant": "bf16", "vllm.tensor-parallel-size": 2}
    assert misfit(spec, params) == "vllm.tensor-parallel-size=2 is outside one of [4, 8]"
    assert misfit(spec, {"engine": "tgi"}) == "engine 'tgi' is not searched here"

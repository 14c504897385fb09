"""A small simulated study on disk, shared by the report, validate and dashboard tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml

from optimizer.config import StudyConfig
from optimizer.loop import run_study
from optimizer.spec.load import load_spec
from runners.sim.runner import SimRunner
from tests.conftest import SHIPPED

NAME = "rep"


def small_space(
    write_space: Callable[[dict[str, object]], Path], shipped: dict[str, object]
) -> Path:
    """qwen3-moe with a 200-prompt workload and a quick validation section."""
    space = dict(shipped)
    space["name"] = NAME
    space["workload"] = {**dict(shipped["workload"]), "num_prompts": 200}  # type: ignore[arg-type]
    space["engines"] = {"vllm": dict(shipped["engines"])["vllm"]}  # type: ignore[call-overload]
    space["validation"] = {
        "repeats": 3,
        "top": 2,
        "concurrency": [32, 256],
        "workloads": [
            {"name": "random-2000-100", "dataset": "random", "num_prompts": 100,
             "input_len": 2000, "output_len": 100},
        ],
    }  # fmt: skip
    return write_space(space)


def make_study(tmp_path: Path, space: Path, n_trials: int = 14) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'studies' / f'{NAME}.db'}"
    config = StudyConfig.of(
        load_spec(space),
        storage=url,
        study_name=NAME,
        n_trials=n_trials,
        sampler="tpe",
        seed=3,
        quiet=True,
    )
    assert run_study(config, SimRunner(artifacts_dir=tmp_path / "trials")) == 0
    return optuna.load_study(study_name=NAME, storage=url)


def study_in(
    factory: pytest.TempPathFactory, label: str, n_trials: int = 14, **workload: object
) -> tuple[optuna.Study, Path]:
    """A fresh simulated study in its own temporary directory: (study, space file)."""
    tmp = factory.mktemp(label)
    shipped = yaml.safe_load(SHIPPED.read_text())

    def write(content: dict[str, object], name: str = "space.yaml") -> Path:
        path = tmp / name
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        return path

    space = small_space(write, shipped)
    if workload:
        content = yaml.safe_load(space.read_text())
        content["workload"].update(workload)
        space = write(content)
    return make_study(tmp, space, n_trials), space

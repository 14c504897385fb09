"""A one-trial study on disk run by a real process: LocalRunner starting the engine emulator.

Shared by the tests of what a real runner's trial leaves in the record, the report and the
dashboard note (instance shape, commands). The study goes through the loop the CLI uses.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import NamedTuple

import optuna

from optimizer.config import RunnerChoice, StudyConfig
from optimizer.loop import run_study
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.local import EmulatorLaunch, LocalRunner


class Emulated(NamedTuple):
    spec: StudySpec
    study: optuna.Study


def emulated_study(folder: Path, space: str, time_scale: float = 20.0) -> Emulated:
    """Write `space` (YAML text) into `folder` and run its one trial there."""
    (folder / "space.yaml").write_text(space)
    spec = load_spec(folder / "space.yaml")
    url = f"sqlite:///{folder / 'study.db'}"
    config = StudyConfig.of(
        spec, storage=url, n_trials=1, quiet=True, runner=RunnerChoice("local")
    )
    runner = LocalRunner(
        folder / "trials",
        emulator=EmulatorLaunch(time_scale=time_scale, startup_s=0.2),
        num_warmups=0,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_study(config, runner) == 0
    return Emulated(spec, optuna.load_study(study_name=spec.name, storage=url))

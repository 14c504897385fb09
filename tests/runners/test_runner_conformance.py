"""The Runner conformance suite (runners.testing.runner) against every runner the project ships:
the embedded simulator, and LocalRunner on the engine emulator (real processes, real HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners import Runner
from runners.local import EmulatorLaunch, LocalRunner, RealRunSettings
from runners.sim.runner import SimRunner
from runners.testing.runner import RunnerConformance


class TestSimRunner(RunnerConformance):
    def make_runner(self, tmp_path: Path) -> Runner:
        return SimRunner()


@pytest.mark.slow
class TestLocalRunnerOnTheEmulator(RunnerConformance):
    process_based = True
    checks_model_paths = True

    def make_runner(self, tmp_path: Path) -> Runner:
        return LocalRunner(
            tmp_path,
            RealRunSettings(start_deadline_s=120.0, bench_timeout_s=120.0),
            emulator=EmulatorLaunch(time_scale=20.0, startup_s=0.2),
            num_warmups=0,
        )

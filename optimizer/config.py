"""The typed configuration of one study run: everything the loop needs, and nothing from argv.

Place in the data flow: `optimizer.cli.parse_args` builds a `StudyConfig` from the command
line; scripts and tests build one with `StudyConfig.of(spec, ...)`, whose defaults come from
the space file (`search.n_trials`, `search.sampler`, `search.seed`, the name). The loop
(`optimizer.loop.run_study`) and the runner factory (`optimizer.cli.make_runner`) read it.
`real_run_settings` turns the space file's `real_run` section and the command line's overrides
into the `RealRunSettings` a real runner (and every Ray actor) runs its engines with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from optimizer.errors import SpecError, UsageError
from optimizer.paths import check_name
from optimizer.spec.models import RealRunSection, SamplerName, StudySpec
from optimizer.spec.presets import RecommendRule
from optimizer.spec.simulator import spec_calibration
from optimizer.storage import DEFAULT_GRACE_S, DEFAULT_HEARTBEAT_S, default_storage_url
from runners.errors import CalibrationError
from runners.settings import RealRunSettings
from runners.sim.fit import CalibrationFit

RunnerName = Literal["sim", "local", "emulator", "ray"]
WorkerName = Literal["sim", "local"]


@dataclass(frozen=True)
class RunnerChoice:
    """Which runner runs the trials, and its options.

    `name`: ``sim`` (the embedded simulated engine), ``local`` (the real engine on this
    machine), ``emulator`` (the local runner with the engine emulator, runners.sim.serve, in
    place of the engine: a real HTTP engine) or ``ray`` (trials on Ray actors, each running
    `ray_worker`). `noise`: the simulator's run-to-run noise model (validation repeats use it;
    the search does not). `emulator_scale`: the local runner starts the engine emulator instead
    of the engine, that many times faster than real time. `emulator_profile`: the emulator's
    truth profile file (docs/emulator-profile.md), which the study never reads beyond checking
    it. `real_run`: deadlines and engine environment of a real engine (`real_run_settings`); a
    Ray trial's actor gets the same.
    """

    name: RunnerName = "sim"
    ray_address: str | None = None
    ray_worker: WorkerName = "sim"
    noise: bool = False
    emulator_scale: float | None = None
    emulator_profile: Path | None = None
    real_run: RealRunSettings = field(default_factory=RealRunSettings)
    calibration: CalibrationFit | None = None
    """The user's calibration (the space file's simulator section) the simulated runner
    applies; None: the shipped calibration."""

    @property
    def real_engine(self) -> bool:
        """Trials start a real engine process (not the simulator, not the emulator)."""
        worker = self.ray_worker if self.name == "ray" else self.name
        return worker == "local" and self.emulator_scale is None

    @property
    def measures_engine(self) -> bool:
        """Trials measure an engine over HTTP (a real engine or the emulator), not the
        embedded simulator: pre-flight then rejects only certain memory failures."""
        worker = self.ray_worker if self.name == "ray" else self.name
        return worker in ("local", "emulator")


def with_calibration(choice: RunnerChoice, spec: StudySpec) -> RunnerChoice:
    """`choice` with the calibration the space file names (`optimizer.spec.simulator`)."""
    if choice.calibration is not None or spec.simulator.calibration is None:
        return choice
    try:
        fit = spec_calibration(spec.simulator)
    except CalibrationError as exc:
        raise SpecError(f"simulator.calibration: {exc}") from None
    return replace(choice, calibration=fit)


def real_run_settings(
    section: RealRunSection,
    *,
    start_deadline_s: float | None = None,
    bench_timeout_s: float | None = None,
    offline: bool | None = None,
    env: Mapping[str, str] | None = None,
    pass_env: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> RealRunSettings:
    """The space file's `real_run` section with the command line's overrides (None: as the
    file says), the variables of `pass_env` (file and command line) taken from `environ`, the
    driver's environment, so that engines on every Ray node see them too. `UsageError` when a
    variable to pass is not set."""
    names = list(dict.fromkeys([*section.pass_env, *pass_env]))
    missing = [name for name in names if name not in environ]
    if missing:
        raise UsageError(
            f"real_run.pass_env / --pass-env: {', '.join(missing)} not set in this environment; "
            "set it before starting the study, or stop passing it"
        )
    variables = {name: environ[name] for name in names} | section.env_text() | dict(env or {})
    return RealRunSettings(
        start_deadline_s=start_deadline_s or section.start_deadline_s,
        bench_timeout_s=bench_timeout_s or section.bench_timeout_s,
        stop_grace_s=section.stop_grace_s,
        offline=section.offline if offline is None else offline,
        env=tuple(sorted(variables.items())),
    )


DEFAULT_TIME_BUDGET_S = 60.0
SCREENING_CANDIDATES = 32
"""Proposals per screened trial when a trial costs minutes of GPU time (real runners)."""
SIM_SCREENING_CANDIDATES = 8
"""Proposals per screened trial in a simulated study, where the prediction costs as much as the
trial itself (docs/convergence.md has the measurement)."""


@dataclass(frozen=True)
class StopRule:
    """When a simulated study without --n-trials stops (optimizer.convergence has the rule):
    the plateau rule's parameters and the time budget (seconds of this run)."""

    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    min_evaluations: int = 150
    window_evaluations: int = 100
    """Both in configurations evaluated: stored trials x the candidates screened per trial."""
    goodput_window_evaluations: int = 40
    """A goodput study's window (same units): its plateau is of one number, the best goodput,
    which settles sooner than a two-objective front's area."""
    rel_gain: float = 0.002
    max_trials: int = 2_000
    """A cap on the runner trials the study holds (StudyConfig.n_trials in this mode)."""


@dataclass(frozen=True)
class StudyConfig:
    """One study run, fully resolved: every default already taken from the space file."""

    spec: StudySpec
    study_name: str
    storage_url: str
    n_trials: int
    sampler: SamplerName
    seed: int
    runner: RunnerChoice = field(default_factory=RunnerChoice)
    heartbeat_s: int = DEFAULT_HEARTBEAT_S
    grace_s: int = DEFAULT_GRACE_S
    warm_start: str | None = None
    preflight: bool = True
    anchors: bool = True
    allow_space_change: bool = False
    quiet: bool = False
    storage_given: bool = False
    """The user named the storage (the closing hint then repeats --storage)."""
    recommend: RecommendRule | None = None
    """--recommend: the recommendation rule instead of the space file's."""
    screening: bool = False
    """Each sampled trial is the best of `screening_candidates` proposals by the study's
    predictor (`optimizer.screening`); the command line turns it on by default."""
    screening_candidates: int | None = None
    """None: `SIM_SCREENING_CANDIDATES` for simulated studies, else `SCREENING_CANDIDATES`."""
    stop: StopRule | None = None
    """Stop when the front converged or the time budget is spent (`n_trials` is then only a
    cap); None: run exactly `n_trials` runner trials."""
    adopt: bool = False
    """--adopt: accept a study this tool did not make, or made from another space."""

    @property
    def candidates_per_trial(self) -> int:
        """Proposals behind each sampled trial (1 without screening)."""
        if not self.screening:
            return 1
        if self.screening_candidates is not None:
            return self.screening_candidates
        return SIM_SCREENING_CANDIDATES if self.runner.name == "sim" else SCREENING_CANDIDATES

    @classmethod
    def of(
        cls,
        spec: StudySpec,
        *,
        study_name: str | None = None,
        storage: str | None = None,
        n_trials: int | None = None,
        sampler: SamplerName | None = None,
        seed: int | None = None,
        runner: RunnerChoice | None = None,
        heartbeat_s: int = DEFAULT_HEARTBEAT_S,
        grace_s: int = DEFAULT_GRACE_S,
        warm_start: str | None = None,
        preflight: bool = True,
        anchors: bool = True,
        allow_space_change: bool = False,
        quiet: bool = False,
        recommend: RecommendRule | None = None,
        screening: bool = False,
        screening_candidates: int | None = None,
        stop: StopRule | None = None,
        adopt: bool = False,
    ) -> StudyConfig:
        """A configuration for `spec`; None means "what the space file says"."""
        name = check_name(study_name, "--study-name") if study_name else spec.name
        return cls(
            spec=spec,
            study_name=name,
            storage_url=storage or default_storage_url(name),
            n_trials=n_trials or (stop.max_trials if stop else spec.search.n_trials),
            sampler=sampler or spec.search.sampler,
            seed=seed if seed is not None else spec.search.seed,
            runner=with_calibration(runner or RunnerChoice(), spec),
            heartbeat_s=heartbeat_s,
            grace_s=grace_s,
            warm_start=warm_start,
            preflight=preflight,
            anchors=anchors,
            allow_space_change=allow_space_change,
            quiet=quiet,
            storage_given=storage is not None,
            recommend=recommend,
            screening=screening,
            screening_candidates=screening_candidates,
            stop=stop,
            adopt=adopt,
        )

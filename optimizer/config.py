"""The typed configuration of one study run: everything the loop needs, and nothing from argv.

Place in the data flow: `optimizer.cli.parse_args` builds a `StudyConfig` from the command
line; scripts and tests build one with `StudyConfig.of(spec, ...)`, whose defaults come from
the space file (`search.n_trials`, `search.sampler`, `search.seed`, the name). The loop
(`optimizer.loop.run_study`) and the runner factory (`optimizer.cli.make_runner`) read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from optimizer.spec.models import SamplerName, StudySpec
from optimizer.storage import DEFAULT_GRACE_S, DEFAULT_HEARTBEAT_S, default_storage_url

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
    it.
    """

    name: RunnerName = "sim"
    ray_address: str | None = None
    ray_worker: WorkerName = "sim"
    noise: bool = False
    emulator_scale: float | None = None
    emulator_profile: Path | None = None


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
    ) -> StudyConfig:
        """A configuration for `spec`; None means "what the space file says"."""
        name = study_name or spec.name
        return cls(
            spec=spec,
            study_name=name,
            storage_url=storage or default_storage_url(name),
            n_trials=n_trials or spec.search.n_trials,
            sampler=sampler or spec.search.sampler,
            seed=seed if seed is not None else spec.search.seed,
            runner=runner or RunnerChoice(),
            heartbeat_s=heartbeat_s,
            grace_s=grace_s,
            warm_start=warm_start,
            preflight=preflight,
            anchors=anchors,
            allow_space_change=allow_space_change,
            quiet=quiet,
            storage_given=storage is not None,
        )

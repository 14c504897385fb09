"""`LocalRunner`: run one candidate as a real engine process on this machine and benchmark it.

Data flow of one real trial: the candidate's checkpoint is made absolute and checked on this
node (`runners.checkpoint`; a local path missing here is ``setup:model_missing``, nothing is
started) -> `runners.launch` starts the engine (adapter launch on a leased port, own process
group, readiness; a start failure comes back classified) -> `runners.measure` benchmarks its
endpoint (request list, load generator, `summarize`, ``bench.json``), once per workload and
load when the workload asks for a load search or more workloads (`runners.load_search`; all on
this one engine start, each in its own folder) -> an engine that died under load is classified
from its log (phase ``load``) -> the process group is always torn
down and the port verified free. The `TrialOutcome` carries the engine log, the launch record
and the benchmark JSON (same keys as `vllm bench serve --save-result`) as artifacts. The runner
never raises for engine faults; only infrastructure faults (teardown failed) give
``infra_error``. Deadlines and the engine's environment come from one `RealRunSettings`.
An instance spanning nodes starts one process per node: all of them here, on this machine (the
sequential path; meant for the emulator), or, on Ray, rank 0 here and each other node's part
by the pool's worker on that node (`start_node`).
`EmulatorLaunch` swaps the engine for `python -m runners.sim.serve` with the same flags.
"""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from runners.bench.loadgen import Endpoint
from runners.checkpoint import absolute_checkpoint, missing_checkpoint
from runners.engines import resolve_candidate
from runners.launch import EmulatorLaunch, EngineInstance, Launcher, StartFailed
from runners.load_search import measure_workloads
from runners.measure import emulator_time_scale, measure, prompt_vocab_size
from runners.phases import report_phase
from runners.process import EngineProcess
from runners.settings import RealRunSettings
from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    LaunchSpec,
    Placement,
    TrialOutcome,
    Workload,
)


class LocalRunner:
    """Runs each candidate as a process on this machine. Blocking; one trial at a time per call.

    `settings` holds the deadlines and the environment policy; `extra_args` are appended per
    engine (e.g. ``{"vllm": ("--generation-config", "vllm")}``); `endpoint` is the API the
    load generator uses (``completions`` or ``chat``).
    """

    def __init__(
        self,
        artifacts_dir: Path,
        settings: RealRunSettings | None = None,
        *,
        extra_args: Mapping[str, tuple[str, ...]] | None = None,
        emulator: EmulatorLaunch | None = None,
        endpoint: Endpoint = "completions",
        num_warmups: int = 1,
    ) -> None:
        self.artifacts_dir = artifacts_dir
        self.settings = settings or RealRunSettings()
        self.launcher = Launcher(
            self.settings,
            artifacts_dir / "cache",
            extra_args=dict(extra_args or {}),
            emulator=emulator,
        )
        self.endpoint = endpoint
        self.num_warmups = num_warmups
        self._nodes: list[EngineProcess] = []  # started by `start_node`, live with this process

    @property
    def emulator(self) -> EmulatorLaunch | None:
        return self.launcher.emulator

    def command(self, spec: LaunchSpec, candidate: Candidate, placement: Placement) -> LaunchSpec:
        """The argv actually started: the engine's own, through the vLLM shim or the emulator."""
        return self.launcher.command(spec, candidate, placement)

    def start_node(self, candidate: Candidate, placement: Placement, rank: int) -> None:
        """Start node `rank`'s part of an instance spanning nodes (asked by the pool's worker
        on that node); it runs until that worker ends, which stops it."""
        candidate = absolute_checkpoint(candidate)
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}-node{rank}"
        process = self.launcher.start_node(candidate, placement, rank, self.artifacts_dir / stamp)
        if process is not None:
            self._nodes.append(process)

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        started = time.perf_counter()
        trial_dir = self.artifacts_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        candidate = absolute_checkpoint(candidate)
        missing = missing_checkpoint(candidate, socket.gethostname())
        if missing is not None:
            return TrialOutcome("crashed", crash=missing, wall_s=time.perf_counter() - started)
        report_phase("launching")
        instance = self.launcher.start(candidate, placement, trial_dir)
        artifacts: list[tuple[str, str]] = [
            ("engine_log", str(instance.log_path)),
            ("launch", str(instance.launch_path)),
        ]
        try:
            outcome = self._drive(instance, candidate, workload, placement, trial_dir)
        finally:
            stop_error = instance.stop()
        artifacts.extend(outcome.artifacts)
        wall = time.perf_counter() - started
        if stop_error:
            return TrialOutcome(
                "infra_error",
                crash=Crash(CrashClass.ENGINE_EXITED, f"teardown failed: {stop_error}"),
                launch=instance.spec,
                wall_s=wall,
                artifacts=tuple(artifacts),
            )
        shape = resolve_candidate(candidate, placement.node_group)
        return dataclasses.replace(
            outcome,
            launch=instance.spec,
            wall_s=wall,
            artifacts=tuple(artifacts),
            replicas=1,
            gpus_per_replica=shape.instance_gpus,
        )

    def _drive(
        self,
        instance: EngineInstance,
        candidate: Candidate,
        workload: Workload,
        placement: Placement,
        trial_dir: Path,
    ) -> TrialOutcome:
        ready = instance.wait_ready()
        startup = ("startup_s", ready.startup_s)
        if isinstance(ready, StartFailed):
            return TrialOutcome("crashed", crash=ready.crash, diagnostics=(startup,))
        scale = emulator_time_scale(ready.endpoint) if self.emulator is not None else 1.0
        runs: list[TrialOutcome] = []

        def once(plain: Workload) -> TrialOutcome:
            measured = measure(
                ready.endpoint,
                plain,
                vocab_size=prompt_vocab_size(candidate),
                num_gpus=placement.gpu_count,
                out_dir=trial_dir if not runs else trial_dir / f"run-{len(runs)}",
                timeout_s=self.settings.bench_timeout_s,
                api=self.endpoint,
                num_warmups=self.num_warmups if not runs else 0,
                time_scale=scale,
            )
            runs.append(measured)
            died = instance.crash_under_load()
            if died is not None:
                return TrialOutcome("crashed", crash=died, diagnostics=(("time_scale", scale),))
            return measured

        outcome = measure_workloads(workload, once).outcome
        return dataclasses.replace(outcome, diagnostics=(startup, *outcome.diagnostics))


__all__ = ["EmulatorLaunch", "LocalRunner", "RealRunSettings"]

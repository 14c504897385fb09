"""`SimRunner`: run a candidate on the embedded simulated engine, in process, in milliseconds.

Candidate -> engine adapter (defaults and argument checks) -> simulator (memory plan, crash
rules, scheduler) -> request records -> `summarize` -> `TrialOutcome`. The workload's seed
fixes the prompts, so every trial of a study sees the same requests; run-to-run noise is off
unless a `Noise` is given (drawn from the workload seed, so a study stays reproducible).

A workload with a load search, or with further workloads (`Workload.also`), is simulated once
per load and workload on the same resolved configuration (`runners.load_search`), as one
engine start would serve them. Every outcome also carries `trial_seconds`: how long the same
trial would occupy its GPUs on real hardware (one launch, then every benchmark or the time
until the crash). Search benchmarks add
these up to measure how much runner time crashes waste. Given an artifacts folder, the runner
writes each trial's simulated benchmark JSON and engine log there (`runners.sim.artifacts`)
and returns them in `TrialOutcome.artifacts`, as `LocalRunner` does with the real ones. An
engine without a simulator policy is refused with an `EngineError`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from runners.bench.metrics import NoMetricValue, summarize
from runners.catalog import GIB
from runners.engines import Resolved, resolve_candidate, sim_policy
from runners.load_search import measure_workloads
from runners.phases import report_phase
from runners.sim import Noise, SimResult, simulate
from runners.sim.artifacts import write_trial_artifacts
from runners.sim.fit import CalibrationFit, calibration_for
from runners.sim.profile import TruthProfile
from runners.sim.sim_cache import SimCache
from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    Placement,
    ServingConfig,
    TrialOutcome,
    Workload,
)

# Estimated wall time of a real trial (priors, not calibrated): argument errors fail while the
# engine parses its configuration; a launch loads weights from local NVMe at about 1 GiB/s per
# GPU after ~2 minutes of process start, compilation and CUDA-graph capture; a crash under load
# happens on average a minute into the benchmark.
ARGUMENT_ERROR_S = 20.0
LAUNCH_FIXED_S = 120.0
WEIGHT_LOAD_GIB_PER_S = 1.0
LOAD_CRASH_AFTER_S = 60.0


def launch_seconds(config: ServingConfig, result: SimResult | None) -> float:
    if result is not None and result.memory is not None:
        weights_gib = result.memory.weights_gib
    else:
        bytes_per_param = 1 if config.weight_dtype == "fp8" else 2
        gpus = max(1, config.gpus_per_replica)
        weights_gib = config.model.total_params * bytes_per_param / gpus / GIB
    return LAUNCH_FIXED_S + weights_gib / WEIGHT_LOAD_GIB_PER_S


class SimRunner:
    """The default runner: no GPU, no process, deterministic for a workload seed.

    `artifacts_dir`: where each trial's simulated files go (None: nothing is written).
    `calibration`: the user's calibration (`runners.sim.fit`), whose corrections for each
    trial's engine the simulation applies (None: the shipped calibration).
    `profile`: a truth profile (`runners.sim.profile`) whose calibration replaces the shipped
    one, so the runner behaves as the engine emulator with that profile does, in process (the
    profile's noise is not applied: pass `noise` for that). Not both.
    `cache`: simulated benchmarks to read back instead of simulating them again
    (`runners.sim.sim_cache`; None: every benchmark is simulated); it must have been made for
    this runner's noise model and calibration, and a runner with a truth profile takes none.
    """

    def __init__(
        self,
        noise: Noise | None = None,
        artifacts_dir: Path | None = None,
        calibration: CalibrationFit | None = None,
        profile: TruthProfile | None = None,
        cache: SimCache | None = None,
    ) -> None:
        if calibration is not None and profile is not None:
            raise ValueError("SimRunner takes a calibration or a truth profile, not both")
        if cache is not None and (profile is not None or not cache.fits(noise, calibration)):
            raise ValueError("a SimCache serves only runners with its noise and calibration")
        self.noise = noise
        self.artifacts_dir = artifacts_dir
        self.calibration = calibration
        self.profile = profile
        self.cache = cache

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        sim_policy(candidate.engine)  # an engine the simulator cannot run is refused here
        report_phase("simulating")
        resolved = resolve_candidate(candidate, placement.node_group)
        outcome = self._simulate(resolved, workload)
        if self.artifacts_dir is None:
            return outcome
        files = write_trial_artifacts(self.artifacts_dir, resolved, workload, outcome)
        return dataclasses.replace(outcome, artifacts=files)

    def _simulate(self, shape: Resolved, workload: Workload) -> TrialOutcome:
        started = time.perf_counter()
        if shape.problem is not None:
            return TrialOutcome(
                "crashed",
                crash=shape.problem,
                wall_s=time.perf_counter() - started,
                diagnostics=(("trial_seconds", ARGUMENT_ERROR_S),),
            )
        assert shape.config is not None
        outcome = self.simulate_config(shape.config, workload)
        return dataclasses.replace(outcome, wall_s=time.perf_counter() - started)

    def simulate_config(self, resolved: ServingConfig, workload: Workload) -> TrialOutcome:
        """The outcome of a resolved configuration on `workload` (load search and further
        workloads included), without artifacts: what the trial would measure. Screening in
        simulated studies predicts with it."""
        started = time.perf_counter()
        launches: list[float] = []

        def once(plain: Workload) -> TrialOutcome:
            outcome, launch_s = self._once(resolved, plain)
            launches.append(launch_s)
            return outcome

        measured = measure_workloads(workload, once)
        # one launch, then every benchmark: each call's estimate holds its own launch
        seconds = sum(dict(c.diagnostics)["trial_seconds"] for c in measured.calls)
        seconds -= sum(launches[1:])
        diagnostics = tuple(
            (key, seconds if key == "trial_seconds" else value)
            for key, value in measured.outcome.diagnostics
        )
        return dataclasses.replace(
            measured.outcome, wall_s=time.perf_counter() - started, diagnostics=diagnostics
        )

    def _once(self, resolved: ServingConfig, workload: Workload) -> tuple[TrialOutcome, float]:
        """One simulated benchmark of one request list, and the launch it would need (read
        back from the cache when it holds it: the same benchmark, simulated before)."""
        if self.cache is None:
            return self._simulate_once(resolved, workload)
        key = (resolved, workload)
        found = self.cache.get(key)
        if found is None:
            found = self._simulate_once(resolved, workload)
            self.cache.put(key, found)
        return found

    def _simulate_once(
        self, resolved: ServingConfig, workload: Workload
    ) -> tuple[TrialOutcome, float]:
        started = time.perf_counter()
        calibration = None
        if self.profile is not None:
            calibration = self.profile.calibration(resolved.engine, resolved.gpu.name)
        elif self.calibration is not None:
            calibration = calibration_for(resolved, self.calibration)
        result = simulate(
            resolved, workload, seed=workload.seed, noise=self.noise, calibration=calibration
        )
        gpus_used = resolved.replicas * resolved.gpus_per_replica
        launch_s = launch_seconds(resolved, result)
        diagnostics = (
            ("replicas", float(resolved.replicas)),
            ("gpus_used", float(gpus_used)),
            ("kv_cache_tokens", float(result.kv_cache_tokens)),
            ("max_num_seqs", float(resolved.max_num_seqs)),
            ("max_num_batched_tokens", float(resolved.max_num_batched_tokens)),
            ("engine_steps", float(result.steps)),
            ("preemptions", float(result.preemptions)),
            ("max_running", float(result.max_running)),
        )
        if result.crash is not None or result.records is None:
            crash = result.crash or Crash(CrashClass.ENGINE_EXITED, "simulator returned nothing")
            spent = launch_s + (LOAD_CRASH_AFTER_S if crash.phase == "load" else 0.0)
            return TrialOutcome(
                "crashed",
                crash=crash,
                wall_s=time.perf_counter() - started,
                diagnostics=(*diagnostics, ("trial_seconds", spent)),
                replicas=resolved.replicas,
                gpus_per_replica=resolved.gpus_per_replica,
            ), launch_s
        try:
            metrics = summarize(result.records, num_gpus=gpus_used)
        except NoMetricValue as exc:
            crash = Crash(CrashClass.INVALID_CONFIG, f"every request failed: {exc}", "load")
            return TrialOutcome(
                "crashed",
                crash=crash,
                wall_s=time.perf_counter() - started,
                diagnostics=(*diagnostics, ("trial_seconds", launch_s + LOAD_CRASH_AFTER_S)),
            ), launch_s
        return TrialOutcome(
            "ok",
            metrics=metrics,
            wall_s=time.perf_counter() - started,
            diagnostics=(*diagnostics, ("trial_seconds", launch_s + metrics.duration_s)),
            replicas=resolved.replicas,
            gpus_per_replica=resolved.gpus_per_replica,
        ), launch_s

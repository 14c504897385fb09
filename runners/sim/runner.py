"""`SimRunner`: run a candidate on the embedded simulated engine, in process, in milliseconds.

Candidate -> engine adapter (defaults and argument checks) -> simulator (memory plan, crash
rules, scheduler) -> request records -> `summarize` -> `TrialOutcome`. The workload's seed
fixes the prompts, so every trial of a study sees the same requests.
"""

from __future__ import annotations

import time

from runners.bench.metrics import NoMetricValue, summarize
from runners.engines import resolve
from runners.sim import simulate
from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    Placement,
    TrialOutcome,
    Workload,
)


class SimRunner:
    """The default runner: no GPU, no process, deterministic for a workload seed."""

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        started = time.perf_counter()
        resolved = resolve(candidate, placement.node_group)
        if isinstance(resolved, Crash):
            return TrialOutcome("crashed", crash=resolved, wall_s=time.perf_counter() - started)
        result = simulate(resolved, workload, seed=workload.seed)
        gpus_used = resolved.replicas * resolved.gpus_per_replica
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
            return TrialOutcome(
                "crashed",
                crash=crash,
                wall_s=time.perf_counter() - started,
                diagnostics=diagnostics,
            )
        try:
            metrics = summarize(result.records, num_gpus=gpus_used)
        except NoMetricValue as exc:
            crash = Crash(CrashClass.INVALID_CONFIG, f"every request failed: {exc}", "load")
            return TrialOutcome("crashed", crash=crash, wall_s=time.perf_counter() - started)
        return TrialOutcome(
            "ok",
            metrics=metrics,
            wall_s=time.perf_counter() - started,
            diagnostics=diagnostics,
        )

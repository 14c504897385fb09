"""The embedded simulated serving engine: `simulate(config, workload, seed) -> SimResult`.

Data flow: `rules.check_config` rejects configs the engine would refuse at startup;
`memory.plan_memory` / `memory.check_memory` size the KV pool and apply the memory crash rules;
`runners.workload.make_requests` draws the requests; `perf.StepModel` tabulates step times; and
`scheduler.run_replica` plays client, API server and engine scheduler for every replica, whose
records are merged in request order. Pure and deterministic: the same (config, workload, seed)
gives a bit-identical result. Request lengths and send times come from `workload.seed` (so all
trials of a study see the same requests); `seed` drives the simulator's own randomness (the
crash-boundary ramp and, when enabled, the `params.Noise` model) from independent streams.
Fitted constants come from `params.fitted_calibration()` unless a `Calibration` is passed (the
calibration script does that). The per-event loop modules are compiled by `pip install`;
`loop_guard` (imported first) refuses a compiled build that no longer matches its sources, and
`BUILD` says whether the loops run compiled or as Python.
"""

from __future__ import annotations

# before any loop module: refuses compiled loops that do not match their sources
from runners.sim.loop_guard import BUILD  # isort: split

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from runners.bench.records import RequestRecords
from runners.engines import sim_policy
from runners.sim.memory import MemoryPlan, check_memory, plan_memory
from runners.sim.params import Calibration, Noise, fitted_calibration
from runners.sim.perf import StepModel
from runners.sim.replica import ReplicaResult
from runners.sim.rules import check_config
from runners.sim.scheduler import run_replica
from runners.types import Crash, ServingConfig, Workload
from runners.workload import RequestSet, make_requests

__all__ = ["BUILD", "Calibration", "MemoryPlan", "Noise", "SimResult", "simulate"]


@dataclass(frozen=True)
class SimResult:
    """Outcome of one simulated trial.

    `records` is None when the config crashed at startup; a crash under load (phase "load")
    also has no records. `kv_cache_tokens` is the KV capacity of one replica (0 when the config
    was rejected before memory planning). `steps`, `preemptions` and `max_running` add up or
    take the maximum over replicas.
    """

    records: RequestRecords | None
    crash: Crash | None
    kv_cache_tokens: int
    memory: MemoryPlan | None
    steps: int
    preemptions: int
    max_running: int


def _sim_rngs(seed: int, replicas: int) -> tuple[np.random.Generator, list[np.random.Generator]]:
    """(crash-ramp stream, one noise stream per replica), independent of each other."""
    crash_seq, noise_seq = np.random.SeedSequence(seed).spawn(2)
    noise = [np.random.Generator(np.random.PCG64(s)) for s in noise_seq.spawn(replicas)]
    return np.random.Generator(np.random.PCG64(crash_seq)), noise


def _sim_rng(seed: int) -> np.random.Generator:
    """The crash-ramp stream alone (kept for `runners.sim.serve`)."""
    return _sim_rngs(seed, 1)[0]


@lru_cache(maxsize=64)
def _step_model(
    config: ServingConfig,
    max_tokens: int,
    calib: Calibration | None = None,
    acceptance: float = 0.7,
) -> StepModel:
    return StepModel(config, max_tokens, calib or fitted_calibration(), acceptance)


def _replica_count(config: ServingConfig) -> int:
    """Independent instances: replicas, and DP where it means whole model copies behind a
    router (SGLang)."""
    return sim_policy(config.engine).instances(config)


def step_budget(config: ServingConfig, kv_tokens: int) -> int:
    """The largest step (tokens) the step model must tabulate: the token budget or the
    running limit, over every engine core of the instance."""
    policy = sim_policy(config.engine)
    seqs = policy.running_limit(config, kv_tokens)
    return max(config.max_num_batched_tokens, seqs) * policy.engine_cores(config)


def _split(requests: RequestSet, replicas: int) -> list[RequestSet]:
    """Round-robin by conversation (a multi-turn conversation stays on one replica, as a
    session-affine router would keep it)."""
    if replicas == 1:
        return [requests]
    conv = requests.conversation()
    parts: list[RequestSet] = []
    for index in range(replicas):
        ids = np.nonzero(conv % replicas == index)[0].astype(np.int64)
        limit = requests.max_concurrency
        share = None if limit is None else max(1, (limit - index + replicas - 1) // replicas)
        parts.append(requests.take(ids, share))
    return parts


def _merge(parts: list[RequestSet], results: list[ReplicaResult]) -> RequestRecords:
    if len(parts) == 1:
        return results[0].records  # one replica played the whole list, in request order
    merged = RequestRecords.concat([r.records for r in results])
    order = np.argsort(np.concatenate([p.request_id for p in parts]), kind="stable")
    return RequestRecords(
        prompt_len=merged.prompt_len[order],
        output_len=merged.output_len[order],
        success=merged.success[order],
        start_s=merged.start_s[order],
        ttft_s=merged.ttft_s[order],
        e2el_s=merged.e2el_s[order],
        itl_s=merged.itl_s,
        duration_s=merged.duration_s,
        itl_count=merged.itl_count,
    )


def simulate(
    config: ServingConfig,
    workload: Workload,
    seed: int = 0,
    *,
    noise: Noise | None = None,
    calibration: Calibration | None = None,
) -> SimResult:
    """Simulate `workload` served by `config`; never raises for engine faults.

    `noise` (default: off) adds run-to-run variation drawn from `seed`; `calibration`
    (default: the shipped fit) supplies the fitted constants.
    """
    calib = calibration or fitted_calibration()
    crash = check_config(config)
    if crash is not None:
        return SimResult(None, crash, 0, None, 0, 0, 0)
    plan = plan_memory(config, calib)
    kv_replica = max(0, plan.kv_tokens_per_replica)
    replicas = _replica_count(config)
    crash_rng, noise_rngs = _sim_rngs(seed, replicas)
    crash = check_memory(config, plan, crash_rng, calib)
    if crash is not None:
        return SimResult(None, crash, kv_replica, plan, 0, 0, 0)
    model = _step_model(
        config, step_budget(config, plan.kv_tokens), calib, workload.draft_acceptance_rate
    )
    parts = _split(make_requests(workload), replicas)
    results = [
        run_replica(config, part, plan.kv_tokens, model, noise, rng)
        for part, rng in zip(parts, noise_rngs, strict=True)
    ]
    return SimResult(
        records=_merge(parts, results),
        crash=None,
        kv_cache_tokens=kv_replica,
        memory=plan,
        steps=sum(r.steps for r in results),
        preemptions=sum(r.preemptions for r in results),
        max_running=max(r.max_running for r in results),
    )

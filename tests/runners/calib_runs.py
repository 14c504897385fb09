"""Measured runs made to order for the calibration tests: configurations served by an engine
that behaves as a known truth profile (simulated with the profile's calibration)."""

from __future__ import annotations

import math

from runners.bench.metrics import summarize
from runners.engines import resolve
from runners.sim import simulate
from runners.sim.fit import Observation, engine_calibration
from runners.sim.profile import EngineScales
from runners.types import Candidate, NodeGroup, ServingConfig, Workload

NODE = NodeGroup("h100", "H100-SXM-80GB", 8)
VERSIONS = {"vllm": "0.33.0", "sglang": "0.5.23"}


def config(engine: str = "vllm", **settings: int | float | str | bool) -> ServingConfig:
    candidate = Candidate.make(
        engine, VERSIONS[engine], "Qwen3-8B", "Qwen/Qwen3-8B", "bf16", settings
    )
    resolved = resolve(candidate, NODE)
    assert isinstance(resolved, ServingConfig), resolved
    return resolved


def workload(
    input_len: int = 1024,
    output_len: int = 128,
    prompts: int = 120,
    rate: float = math.inf,
    concurrency: int | None = None,
) -> Workload:
    return Workload(
        name=f"random-{input_len}-{output_len}",
        dataset="random",
        input_len=input_len,
        output_len=output_len,
        num_prompts=prompts,
        request_rate=rate,
        max_concurrency=concurrency,
    )


def measured(cfg: ServingConfig, load: Workload, truth: EngineScales, label: str) -> Observation:
    """What an engine behaving as `truth` measures for `cfg` under `load`."""
    calib = engine_calibration(cfg.engine, cfg.gpu.name, truth, None)
    result = simulate(cfg, load, calibration=calib)
    metrics = None
    if result.records is not None:
        metrics = summarize(result.records, num_gpus=cfg.gpus_per_replica)
    return Observation(cfg, load, metrics, label)


def varied_runs(truth: EngineScales, engine: str = "vllm", count: int = 5) -> list[Observation]:
    """`count` runs of differing shape: prefill-heavy, decode-heavy, low and high load."""
    shapes = [
        (config(engine), workload(2048, 64)),
        (config(engine), workload(256, 512)),
        (config(engine, max_num_seqs=16), workload(512, 256, concurrency=8)),
        (config(engine, max_num_batched_tokens=4096), workload(1024, 128, rate=4.0)),
        (config(engine, max_num_seqs=64), workload(1024, 256)),
        (config(engine), workload(128, 128, concurrency=2)),
    ]
    return [
        measured(c, w, truth, f"runs.csv row {i + 1}") for i, (c, w) in enumerate(shapes[:count])
    ]

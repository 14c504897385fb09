"""How long a calibration refit takes, against simulating its runs once in the same process.

Run: ``python scripts/bench_fit.py [--runs 10] [--requests 1000] [--repeats 3]``.

Makes `--runs` measured runs of Qwen3-8B on one H100 (vLLM, differing prompt and output
lengths, loads and settings, 200 to `--requests` requests) by simulating an engine whose
compute is 30% faster, bandwidth 20% lower and host overhead doubled (a truth profile), then
times `runners.sim.fit.fit_calibration` on them. The baseline is one full simulation of every
run, measured in the same process: the ratio says how many such passes a refit costs. Prints
the recovered factors too, so a speed-up that breaks the fit shows.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from runners.bench.metrics import summarize
from runners.engines import resolve
from runners.sim import simulate
from runners.sim.fit import Observation, engine_calibration, fit_calibration
from runners.sim.profile import EngineScales
from runners.types import Candidate, NodeGroup, ServingConfig, Workload

NODE = NodeGroup("h100", "H100-SXM-80GB", 8)
TRUTH = EngineScales(compute_efficiency=1.3, memory_bandwidth_efficiency=0.8, step_overhead=2.0)
SHAPES = [
    ({}, 2048, 64, math.inf, None),
    ({}, 256, 512, math.inf, None),
    ({"max_num_seqs": 16}, 512, 256, math.inf, 8),
    ({"max_num_batched_tokens": 4096}, 1024, 128, 4.0, None),
    ({"max_num_seqs": 64}, 1024, 256, math.inf, None),
    ({}, 128, 128, math.inf, 2),
    ({"max_num_seqs": 128}, 3000, 200, 8.0, None),
    ({"max_num_batched_tokens": 2048}, 512, 512, math.inf, 32),
    ({}, 1500, 300, 2.0, None),
    ({"max_num_seqs": 32}, 700, 100, math.inf, None),
]


def config(settings: dict[str, int]) -> ServingConfig:
    candidate = Candidate.make("vllm", "0.33.0", "Qwen3-8B", "Qwen/Qwen3-8B", "bf16", settings)
    resolved = resolve(candidate, NODE)
    assert isinstance(resolved, ServingConfig)
    return resolved


def runs(count: int, requests: int) -> list[Observation]:
    out = []
    for index in range(count):
        settings, prompt, output, rate, concurrency = SHAPES[index % len(SHAPES)]
        prompts = 200 + (requests - 200) * index // max(1, count - 1)
        load = Workload(
            name=f"run-{index}",
            dataset="random",
            input_len=prompt,
            output_len=output,
            num_prompts=prompts,
            request_rate=rate,
            max_concurrency=concurrency,
        )
        cfg = config(settings)
        calib = engine_calibration("vllm", cfg.gpu.name, TRUTH, None)
        result = simulate(cfg, load, calibration=calib)
        assert result.records is not None
        metrics = summarize(result.records, num_gpus=cfg.gpus_per_replica)
        out.append(Observation(cfg, load, metrics, f"run {index + 1}"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    observations = runs(args.runs, args.requests)
    baseline, fitting = [], []
    fit = None
    for repeat in range(args.repeats):
        scale = 1.0 + 0.001 * (repeat + 1)  # a calibration not cached by the simulator
        started = time.perf_counter()
        for obs in observations:
            scales = EngineScales(compute_efficiency=scale)
            calib = engine_calibration("vllm", obs.config.gpu.name, scales, None)
            simulate(obs.config, obs.workload, calibration=calib)
        baseline.append(time.perf_counter() - started)
        started = time.perf_counter()
        fit = fit_calibration(observations)
        fitting.append(time.perf_counter() - started)
    assert fit is not None
    one_pass, refit = statistics.median(baseline), statistics.median(fitting)
    print(f"{args.runs} runs of 200-{args.requests} requests, median of {args.repeats}:")
    print(f"  one simulation of every run (baseline): {one_pass:.2f} s")
    print(f"  fit_calibration:                        {refit:.2f} s = {refit / one_pass:.1f}x")
    for name in ("compute_efficiency", "memory_bandwidth_efficiency", "step_overhead"):
        value, sigma = fit.corrections[f"vllm.{name}"]
        print(f"  {name}: {value:.3f} +/- {100 * sigma:.0f}% (truth {getattr(TRUTH, name)})")
    print(f"  {fit.note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

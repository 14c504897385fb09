"""Time the simulator on a grid of Qwen3-235B / 8xH100 configs (SIMULATOR.md §10 budget).

Run: ``python scripts/bench_sim.py [--repeat N]``. Prints, per config, the median and max wall
milliseconds of one 1,000-request ShareGPT-like all-at-once trial, the engine steps simulated,
and the predicted output throughput, so a slow corner of the search space shows up at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from runners.sim import simulate
from runners.sim.reference import reference_config
from runners.types import ServingConfig, Workload

WORKLOAD = Workload(name="sharegpt-1000", dataset="sharegpt-like", num_prompts=1000)


def grid() -> list[tuple[str, ServingConfig]]:
    base = reference_config()
    out: list[tuple[str, ServingConfig]] = []
    for engine in ("vllm", "sglang"):
        for tp, dp, ep, dtype in (
            (8, 1, False, "bf16"),
            (8, 1, True, "bf16"),
            (8, 1, True, "fp8"),
            (4, 1, False, "fp8"),
            (4, 2, True, "fp8"),
            (2, 2, True, "fp8"),
        ):
            for seqs, tokens, chunked, mml, mem in (
                (1024, 8192, True, 262144, 0.92),
                (32, 2048, True, 262144, 0.92),
                (128, 16384, True, 262144, 0.92),
                (512, 65536, True, 32768, 0.85),
                (256, 32768, False, 32768, 0.88),
            ):
                if engine == "sglang":
                    mem -= 0.07
                cfg = dataclasses.replace(
                    base,
                    engine=engine,
                    engine_version="0.33.0" if engine == "vllm" else "0.5.9",
                    tensor_parallel=tp,
                    data_parallel=dp,
                    expert_parallel=ep,
                    weight_dtype=dtype,
                    max_num_seqs=seqs,
                    max_num_batched_tokens=tokens,
                    chunked_prefill=chunked,
                    max_model_len=mml,
                    mem_fraction=mem,
                )
                name = (
                    f"{engine:6s} tp{tp} dp{dp} {'ep' if ep else '--'} {dtype} "
                    f"seqs{seqs:<5d} mnbt{tokens:<6d} {'cp' if chunked else 'nc'}"
                )
                out.append((name, cfg))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'config':52s} {'med ms':>7s} {'max ms':>7s} {'steps':>6s} {'out tok/s':>9s}  crash")
    worst = 0.0
    for name, cfg in grid():
        walls: list[float] = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = simulate(cfg, WORKLOAD, seed=0)
            walls.append((time.perf_counter() - t0) * 1e3)
        worst = max(worst, max(walls))
        tput = ""
        if result.records is not None:
            rec = result.records
            tput = f"{rec.output_len[rec.success].sum() / rec.duration_s:9.0f}"
        crash = result.crash.crash_class.value if result.crash else ""
        print(
            f"{name:52s} {statistics.median(walls):7.1f} {max(walls):7.1f} "
            f"{result.steps:6d} {tput:>9s}  {crash}"
        )
    print(f"worst trial: {worst:.1f} ms")


if __name__ == "__main__":
    main()

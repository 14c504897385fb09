"""Time the simulator: headline trials against their budgets, then a grid of configs.

Run: ``python scripts/bench_sim.py [--repeat N] [--no-grid]``. First measures a fixed
machine-speed baseline (a pure-Python + NumPy loop, in this same run) so timings can be read as
ratios on any machine; then times the headline trials of the simulator's design against the issue's
budgets (a 1,000-request ShareGPT all-at-once trial of Qwen3-235B TP8 on 8xH100 <= 150 ms
median; a closed-loop concurrency-1 run of 1,000 requests <= 1 s); then a grid of Qwen3-235B /
8xH100 configs over all four engines' scheduler semantics, printing median and max wall ms, engine
steps and predicted output throughput, so a slow corner of the search space shows up at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from runners.sim import SimResult, simulate
from runners.sim.reference import reference_config
from runners.types import EngineName, ServingConfig, Workload

SHAREGPT = Workload(name="sharegpt-1000", dataset="sharegpt-like", num_prompts=1000)
CLOSED_1 = dataclasses.replace(SHAREGPT, name="closed-c1", max_concurrency=1)
CLOSED_16 = dataclasses.replace(SHAREGPT, name="closed-c16", max_concurrency=16)


def baseline_unit() -> None:
    """A fixed amount of interpreter + small-array NumPy work (~20 ms on a 2020s core)."""
    acc = np.zeros(64)
    for i in range(4000):
        acc += np.arange(64) * (i % 7)
        _ = float(acc.sum())


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    walls: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t0) * 1e3)
    return walls


def out_tok_s(result: SimResult) -> str:
    if result.records is None:
        return ""
    rec = result.records
    return f"{rec.output_len[rec.success].sum() / rec.duration_s:9.0f}"


def grid() -> list[tuple[str, ServingConfig]]:
    base = reference_config()
    out: list[tuple[str, ServingConfig]] = []
    engines: tuple[EngineName, ...] = ("vllm", "sglang", "trtllm", "mindie")
    for engine in engines:
        for tp, dp, ep, dtype in (
            (8, 1, False, "bf16"),
            (8, 1, True, "fp8"),
            (4, 1, False, "fp8"),
            (4, 2, True, "fp8"),
        ):
            if engine == "mindie" and dtype == "fp8":
                continue
            for seqs, tokens, chunked, mml, mem in (
                (1024, 8192, True, 262144, 0.92),
                (32, 2048, True, 262144, 0.92),
                (512, 65536, True, 32768, 0.85),
                (256, 32768, False, 32768, 0.88),
            ):
                extra: dict[str, object] = {}
                if engine == "sglang":
                    mem -= 0.07
                if engine in ("trtllm", "mindie"):
                    mem = 0.9
                    extra = {"block_size": 32 if engine == "trtllm" else 128}
                if engine == "trtllm":
                    extra["capacity_policy"] = "guaranteed_no_evict"
                if engine == "mindie":
                    extra.update(max_prefill_batch=50, max_prefill_tokens=tokens)
                cfg = dataclasses.replace(
                    base,
                    engine=engine,
                    engine_version={
                        "vllm": "0.33.0",
                        "sglang": "0.5.9",
                        "trtllm": "1.2.0",
                        "mindie": "2.0",
                    }[engine],
                    tensor_parallel=tp,
                    data_parallel=dp,
                    expert_parallel=ep,
                    weight_dtype=dtype,  # type: ignore[arg-type]
                    max_num_seqs=seqs,
                    max_num_batched_tokens=tokens,
                    chunked_prefill=chunked,
                    max_model_len=mml,
                    mem_fraction=mem,
                    **extra,  # type: ignore[arg-type]
                )
                name = (
                    f"{engine:6s} tp{tp} dp{dp} {'ep' if ep else '--'} {dtype} "
                    f"seqs{seqs:<5d} mnbt{tokens:<6d} {'cp' if chunked else 'nc'}"
                )
                out.append((name, cfg))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-grid", action="store_true")
    args = parser.parse_args()
    base_ms = statistics.median(timed(baseline_unit, max(5, args.repeat)))
    print(f"machine baseline (fixed Python+NumPy loop): {base_ms:.1f} ms\n")
    ref = reference_config()
    simulate(ref, SHAREGPT)  # warm the step-model cache and imports
    print(
        f"{'headline trial':58s} {'med ms':>7s} {'max ms':>7s} {'x base':>7s} {'budget':>7s}"
        f" {'steps':>7s} {'out tok/s':>9s}"
    )
    for label, workload, budget, repeat in (
        ("Qwen3-235B TP8 8xH100, ShareGPT 1000 all-at-once", SHAREGPT, 150.0, args.repeat),
        (
            "same, closed loop concurrency 1, 1000 requests",
            CLOSED_1,
            1000.0,
            max(1, args.repeat // 2),
        ),
        (
            "same, closed loop concurrency 16, 1000 requests",
            CLOSED_16,
            None,
            max(1, args.repeat // 2),
        ),
    ):
        result = simulate(ref, workload)
        walls = timed(partial(simulate, ref, workload), repeat)
        med = statistics.median(walls)
        verdict = "" if budget is None else f"{'ok' if med <= budget else 'OVER'} {budget:.0f}"
        print(
            f"{label:58s} {med:7.1f} {max(walls):7.1f} {med / base_ms:7.2f} {verdict:>7s} "
            f"{result.steps:7d} {out_tok_s(result):>9s}"
        )
    if args.no_grid:
        return
    print(f"\n{'config':52s} {'med ms':>7s} {'max ms':>7s} {'steps':>6s} {'out tok/s':>9s}  crash")
    worst = 0.0
    all_walls: list[float] = []
    for name, cfg in grid():
        result = simulate(cfg, SHAREGPT, seed=0)
        walls = timed(partial(simulate, cfg, SHAREGPT), max(1, args.repeat // 2))
        worst = max(worst, max(walls))
        all_walls.extend(walls)
        crash = result.crash.crash_class.value if result.crash else ""
        print(
            f"{name:52s} {statistics.median(walls):7.1f} {max(walls):7.1f} "
            f"{result.steps:6d} {out_tok_s(result):>9s}  {crash}"
        )
    print(
        f"grid: median {statistics.median(all_walls):.1f} ms, worst trial {worst:.1f} ms "
        f"({worst / base_ms:.2f} x baseline)"
    )


if __name__ == "__main__":
    main()

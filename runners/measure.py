"""`measure(endpoint, workload, ...) -> TrialOutcome`: benchmark a serving endpoint.

Second stage of a real trial (after `runners.launch`, which started the engine; any pool that
can start, address and tear down an engine can use this stage as it is). It knows nothing
about processes: the workload's request list (`runners.workload.make_requests`, the very list
the simulator plays) becomes prompts (`runners.workload.bench_requests`: the source's texts, or
token-id prompts with its shared prefixes), `runners.bench.loadgen` sends them at the list's
send times, each session's turns one after another, and times them like `vllm bench serve`,
`runners.bench.summarize` turns the records into `Metrics`, and the run is saved as
``bench.json`` with the keys of `vllm bench serve --save-result`. A benchmark that does not
finish within its deadline is ``load:timeout``; a run in which every request failed is
``invalid:config`` when all were refused as bad requests (HTTP 4xx, e.g. a max-model-len below
the workload) and ``load:error`` otherwise (5xx answers, broken streams).

An emulator endpoint (`python -m runners.sim.serve`) may run `time_scale` x faster than real
time: the arrival schedule is then sent that much faster and every measured time is scaled back
(`emulator_time_scale` reads the scale from the endpoint).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from runners.bench.loadgen import BenchResult, Endpoint, LoadConfig, make_client, run_benchmark
from runners.bench.metrics import summarize
from runners.bench.records import RequestRecords
from runners.bench.results import save_result, to_vllm_json
from runners.catalog import get_model
from runners.errors import NoMetricValue
from runners.phases import report_phase
from runners.types import Candidate, Crash, CrashClass, TrialOutcome, Workload
from runners.workload import BenchRequest, bench_requests, make_requests


@dataclass(frozen=True)
class ServingEndpoint:
    """An OpenAI-compatible server: where it listens and the model name it serves."""

    host: str
    port: int
    model: str
    api_prefix: str = "/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.api_prefix


def measure(
    endpoint: ServingEndpoint,
    workload: Workload,
    *,
    vocab_size: int,
    num_gpus: int,
    out_dir: Path,
    timeout_s: float,
    api: Endpoint = "completions",
    num_warmups: int = 1,
    time_scale: float = 1.0,
) -> TrialOutcome:
    """Send `workload` to `endpoint` and summarize it; never raises for server faults.

    `vocab_size` bounds the prompts' token ids; `num_gpus` is what served the workload (for
    per-GPU metrics); ``bench.json`` is written to `out_dir`. The outcome's diagnostics hold
    the time scale and, when it completed, the failed requests and how late the sends were.
    """
    requests = make_requests(workload)
    prompts = bench_requests(requests, vocab_size, workload.seed)
    parents = None if requests.parent is None else requests.parent.tolist()
    config = LoadConfig(
        base_url=endpoint.base_url,
        model=endpoint.model,
        endpoint=api,
        num_warmups=num_warmups,
        max_concurrency=workload.max_concurrency,
    )
    # an emulator running `time_scale` x faster than real time must see the arrivals as fast
    times = [float(t) / time_scale for t in requests.send_s]
    report_phase("warming up" if num_warmups > 0 else "measuring")
    result = _benchmark(
        config, prompts, times, parents, workload, timeout_s / min(time_scale, 1.0)
    )
    diagnostics: list[tuple[str, float]] = [("time_scale", time_scale)]
    if result is None:
        crash = Crash(
            CrashClass.LOAD_TIMEOUT,
            f"the benchmark did not finish within {timeout_s:g} s "
            "(engine alive but not answering)",
            "load",
        )
        return TrialOutcome("crashed", crash=crash, diagnostics=tuple(diagnostics))
    records = scale_records(result.records(), time_scale)
    try:
        metrics = summarize(records, num_gpus=num_gpus)
    except NoMetricValue:
        return TrialOutcome("crashed", crash=_all_failed(result), diagnostics=tuple(diagnostics))
    document = to_vllm_json(_scaled(result, records, time_scale), metrics, endpoint.model)
    if time_scale != 1.0:
        document["emulator_time_scale"] = time_scale
    bench_path = save_result(out_dir / "bench.json", document)
    diagnostics.append(("failed_requests", float(metrics.failed)))
    diagnostics.extend(send_lateness_diagnostics(result))
    return TrialOutcome(
        "ok",
        metrics=metrics,
        diagnostics=tuple(diagnostics),
        artifacts=(("benchmark_json", str(bench_path)),),
    )


def send_lateness_diagnostics(result: BenchResult) -> list[tuple[str, float]]:
    """How late the load generator sent against the request list's send times, in wall
    milliseconds of this machine (p50, p99, max over the requests sent): a p99 near the gaps
    between arrivals means the engine saw a different arrival pattern than the one asked for.
    With them `send_clock_realtime` (1 or 0): whether the send clock had a real-time priority,
    without which a busy machine alone delays sends by milliseconds."""
    late_ms = np.array(result.lateness_s(), dtype=np.float64) * 1000.0
    if late_ms.size == 0:
        return []
    p50, p99 = np.percentile(late_ms, [50.0, 99.0])
    shown = [
        ("send_lateness_p50_ms", float(p50)),
        ("send_lateness_p99_ms", float(p99)),
        ("send_lateness_max_ms", float(late_ms.max())),
    ]
    if result.realtime_sends is not None:
        shown.append(("send_clock_realtime", 1.0 if result.realtime_sends else 0.0))
    return shown


def emulator_time_scale(endpoint: ServingEndpoint) -> float:
    """How much faster than real time the emulator behind `endpoint` runs (1.0 if unknown)."""
    try:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            return float(client.get(endpoint.root_url + "/emulator").json()["time_scale"])
    except (httpx.HTTPError, KeyError, ValueError):
        return 1.0


def prompt_vocab_size(candidate: Candidate) -> int:
    """Vocabulary size for token-id prompts: the checkpoint's config.json on this node when it
    is a local folder, else the catalogue's model."""
    config = Path(candidate.checkpoint) / "config.json"
    if config.is_file():
        try:
            return int(json.loads(config.read_text())["vocab_size"])
        except (OSError, KeyError, ValueError):
            pass
    return int(get_model(candidate.model).vocab)


def scale_records(records: RequestRecords, scale: float) -> RequestRecords:
    """Times measured against an emulator running `scale` x faster, in emulated seconds."""
    if scale == 1.0:
        return records
    return dataclasses.replace(
        records,
        start_s=records.start_s * scale,
        ttft_s=records.ttft_s * scale,
        e2el_s=records.e2el_s * scale,
        itl_s=records.itl_s * scale,
        duration_s=records.duration_s * scale,
    )


def _benchmark(
    config: LoadConfig,
    prompts: Sequence[BenchRequest],
    send_times_s: list[float],
    parents: list[int] | None,
    workload: Workload,
    timeout_s: float,
) -> BenchResult | None:
    async def main() -> BenchResult | None:
        async with make_client() as client:
            try:
                return await asyncio.wait_for(
                    run_benchmark(
                        client,
                        config,
                        prompts,
                        send_times_s,
                        workload.request_rate,
                        workload.burstiness,
                        parents,
                    ),
                    timeout_s,
                )
            except TimeoutError:
                return None

    return asyncio.run(main())


def _all_failed(result: BenchResult) -> Crash:
    errors = [r.error for r in result.results if r.error]
    first = errors[0] if errors else "no error text"
    # every request refused as a bad request (4xx) is the configuration's fault (e.g. a
    # max-model-len below the workload); 5xx answers and broken streams are the engine's
    rejected = bool(errors) and all(e.startswith("HTTP 4") for e in errors)
    crash_class = CrashClass.INVALID_CONFIG if rejected else CrashClass.LOAD_ERROR
    return Crash(crash_class, f"every request failed: {first}", "load")


def _scaled(result: BenchResult, records: RequestRecords, scale: float) -> BenchResult:
    """The per-request results in emulated seconds (for the saved document)."""
    return dataclasses.replace(
        result,
        duration_s=records.duration_s,
        intended_s=tuple(t * scale for t in result.intended_s),
        results=tuple(
            dataclasses.replace(
                r,
                start_s=r.start_s * scale,
                ttft_s=r.ttft_s * scale,
                latency_s=r.latency_s * scale,
                itl_s=tuple(g * scale for g in r.itl_s),
            )
            for r in result.results
        ),
    )

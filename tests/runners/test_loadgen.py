"""The load generator against an in-process transport (timed on the event loop by `LoopTimed`):
timing keys, failures, concurrency, sessions."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from runners.bench.loadgen import LoadConfig, run_benchmark
from runners.bench.metrics import request_goodput, summarize
from runners.bench.records import RequestRecords
from runners.bench.results import metrics_from_vllm_json, save_result, to_vllm_json
from runners.bench.sendclock import LoopTimed
from runners.types import Workload
from runners.workload import BenchRequest, TokenPrompts, make_requests

pytestmark = pytest.mark.usefixtures("event_loop_kind")  # asyncio and uvloop


def sse_handler(state: dict[str, int]) -> LoopTimed:
    async def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("model") != "m":
            return httpx.Response(404, json={"error": "The model does not exist."})
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        n = int(body["max_tokens"])
        prompt = body.get("prompt")
        lines = []
        for _ in range(n):
            lines.append(json.dumps({"choices": [{"index": 0, "text": "x"}]}))
        usage = {"prompt_tokens": len(prompt) if isinstance(prompt, list) else 3}
        usage["completion_tokens"] = n
        lines.append(json.dumps({"choices": [], "usage": usage}))
        await asyncio.sleep(0.002)
        state["in_flight"] -= 1
        text = "".join(f"data: {line}\n\n" for line in lines) + "data: [DONE]\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    return LoopTimed(httpx.MockTransport(handle))


def prompts(workload: Workload, vocab_size: int) -> tuple[BenchRequest, ...]:
    return tuple(TokenPrompts(make_requests(workload), vocab_size, workload.seed))


def run(requests: list[BenchRequest], config: LoadConfig, state: dict[str, int]):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        async with httpx.AsyncClient(transport=sse_handler(state)) as client:
            return await run_benchmark(client, config, requests)

    return asyncio.run(main())


def test_streams_are_timed_and_counted() -> None:
    requests = list(prompts(Workload("w", "random", 10, input_len=7, output_len=5), 1000))
    state = {"in_flight": 0, "peak": 0}
    result = run(requests, LoadConfig("http://x/v1", "m", num_warmups=2), state)
    assert len(result.results) == 10  # warm-ups are not recorded
    metrics = summarize(result.records(), 1)
    assert metrics.completed == 10
    assert metrics.total_input_tokens == 70
    assert metrics.total_output_tokens == 50
    assert all(len(r.itl_s) == 4 for r in result.results)
    assert all(r.latency_s >= r.ttft_s for r in result.results)


def test_failures_are_counted_not_dropped() -> None:
    requests = [BenchRequest(3, 4, prompt_ids=(1, 2, 3))] * 4
    state = {"in_flight": 0, "peak": 0}
    result = run(requests, LoadConfig("http://x/v1", "wrong"), state)
    records = result.records()
    assert records.num_requests == 4
    assert not records.success.any()
    assert "does not exist" in result.results[0].error


def test_closed_loop_respects_max_concurrency() -> None:
    requests = list(prompts(Workload("w", "random", 30, input_len=4, output_len=3), 1000))
    state = {"in_flight": 0, "peak": 0}
    run(requests, LoadConfig("http://x/v1", "m", max_concurrency=3), state)
    assert state["peak"] == 3  # the limit is reached, never passed
    unlimited = {"in_flight": 0, "peak": 0}
    run(requests, LoadConfig("http://x/v1", "m"), unlimited)
    assert unlimited["peak"] > 3  # without it, all-at-once arrivals overlap beyond 3


def test_result_json_round_trips_to_metrics(tmp_path: Path) -> None:
    requests = list(prompts(Workload("w", "random", 5, input_len=5, output_len=4), 1000))
    result = run(requests, LoadConfig("http://x/v1", "m"), {"in_flight": 0, "peak": 0})
    metrics = summarize(result.records(), 1)
    doc = to_vllm_json(result, metrics, "m", goodput_slo_ms={"ttft": 1e6})
    path = save_result(tmp_path / "r.json", doc)
    back = metrics_from_vllm_json(path, 1)
    assert back.completed == metrics.completed
    assert back.output_throughput_tok_s == pytest.approx(metrics.output_throughput_tok_s)
    assert back.tpot_ms.p99 == pytest.approx(metrics.tpot_ms.p99)
    assert doc["request_goodput"] == pytest.approx(metrics.request_throughput_req_s)
    assert doc["request_rate"] == "inf"


def test_goodput_applies_every_slo() -> None:
    records = RequestRecords(
        prompt_len=np.array([1, 1, 1]),
        output_len=np.array([11, 11, 1]),
        success=np.array([True, True, False]),
        start_s=np.zeros(3),
        ttft_s=np.array([0.1, 0.5, 0.0]),
        e2el_s=np.array([0.2, 0.6, 0.0]),
        itl_s=np.array([0.01]),
        duration_s=2.0,
    )
    assert request_goodput(records, {"ttft": 200.0}) == 0.5
    assert request_goodput(records, {"tpot": 5.0}) == 0.0
    assert request_goodput(records, {}) == 1.0
    assert math.isfinite(request_goodput(records, {"e2el": 1000.0}))


def logging_handler(log: list[tuple[float, int]], fail_len: int = -1) -> LoopTimed:
    """Streams 3 chunks after 5 ms; logs (arrival time, prompt length); fails one length."""

    async def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        log.append((time.perf_counter(), len(body["prompt"])))
        if len(body["prompt"]) == fail_len:
            return httpx.Response(500, json={"error": "boom"})
        await asyncio.sleep(0.005)
        chunk = json.dumps({"choices": [{"index": 0, "text": "x"}]})
        usage = json.dumps({"choices": [], "usage": {"completion_tokens": 3}})
        text = f"data: {chunk}\n\n" * 3 + f"data: {usage}\n\ndata: [DONE]\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    return LoopTimed(httpx.MockTransport(handle))


def run_sessions(  # type: ignore[no-untyped-def]
    requests: list[BenchRequest],
    times: list[float],
    parents: list[int],
    log: list[tuple[float, int]],
    max_concurrency: int | None = None,
    fail_len: int = -1,
):
    async def main():  # type: ignore[no-untyped-def]
        async with httpx.AsyncClient(transport=logging_handler(log, fail_len)) as client:
            config = LoadConfig("http://x/v1", "m", max_concurrency=max_concurrency)
            return await run_benchmark(client, config, requests, times, parents=parents)

    return asyncio.run(main())


def by_length(*lengths: int) -> list[BenchRequest]:
    return [BenchRequest(n, 3, prompt_ids=tuple(range(1, n + 1))) for n in lengths]


def test_a_later_turn_waits_for_the_previous_one_and_for_its_own_time() -> None:
    # session A: 10 -> 11 (due at 0, so right after 10 ends); session B: 20 -> 21 (due 0.05 s)
    requests = by_length(10, 20, 11, 21)
    log: list[tuple[float, int]] = []
    result = run_sessions(requests, [0.0, 0.0, 0.0, 0.05], [-1, -1, 0, 1], log)
    start = {n: t for t, n in log}
    ends = [r.start_s + r.latency_s for r in result.results]
    assert all(r.success for r in result.results)
    assert result.results[2].start_s >= ends[0]  # after its previous turn finished
    assert result.results[3].start_s >= 0.05  # not before its own send time
    assert start[11] > start[10] and start[21] > start[20]  # as the server saw them
    intended = result.intended_s
    assert intended[0] == intended[1] == 0.0
    assert intended[2] >= ends[0] and intended[3] == 0.05
    assert min(result.lateness_s()) >= -1e-9  # never sent before it was due


def test_a_session_keeps_its_concurrency_slot_until_its_last_turn() -> None:
    requests = by_length(10, 20, 11, 21)
    log: list[tuple[float, int]] = []
    run_sessions(requests, [0.0] * 4, [-1, -1, 0, 1], log, max_concurrency=1)
    assert [n for _, n in log] == [10, 11, 20, 21]


def test_a_failed_turn_fails_the_rest_of_its_session_unsent() -> None:
    requests = by_length(10, 13, 11, 12)
    log: list[tuple[float, int]] = []
    result = run_sessions(requests, [0.0] * 4, [-1, 0, 1, -1], log, fail_len=13)
    assert sorted(n for _, n in log) == [10, 12, 13]  # 11 followed the failed 13: never sent
    assert [r.success for r in result.results] == [True, False, False, True]
    assert "earlier turn of the session failed" in result.results[2].error
    assert math.isnan(result.intended_s[2])
    records = result.records()
    assert records.num_requests == 4 and int(records.success.sum()) == 2


def test_two_next_turns_of_one_request_are_refused() -> None:
    with pytest.raises(ValueError, match="previous turn of two requests"):
        run_sessions(by_length(10, 11, 12), [0.0] * 3, [-1, 0, 0], [])

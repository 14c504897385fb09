"""`runners.bench.ahead.Ahead`: first-turn requests built ahead in order, within the byte
budget and only while the next handoff is far enough away; a request not built yet is built
when taken, and taking out of order is an error (never a wrong body sent)."""

from __future__ import annotations

import time

import httpx
import pytest

from runners.bench import ahead as ahead_module
from runners.bench.ahead import Ahead
from runners.workload import BenchRequest

REQUESTS = [BenchRequest(i + 1, 2, prompt_ids=tuple(range(i + 1))) for i in range(5)]


def builder(log: list[int]) -> Ahead:
    def build(request: BenchRequest) -> httpx.Request:
        log.append(request.prompt_len)
        return httpx.Request("POST", "http://x/v1", content=b"%d" % request.prompt_len * 10)

    return Ahead(REQUESTS, [0, 2, 4], build)


def test_built_ahead_in_order_and_taken_in_order() -> None:
    log: list[int] = []
    ahead = builder(log)
    far = time.perf_counter() + 60.0
    while ahead.build_one(far):
        pass
    assert log == [1, 3, 5]  # every root, once, in dispatch order
    taken = [ahead.take(root) for root in (0, 2, 4)]
    assert [request.prompt_len for request, _ in taken] == [1, 3, 5]
    assert [post.content for _, post in taken] == [b"1" * 10, b"3" * 10, b"5" * 10]
    assert log == [1, 3, 5]  # nothing built twice


def test_nothing_is_built_when_a_handoff_is_near_and_take_builds_then() -> None:
    log: list[int] = []
    ahead = builder(log)
    assert not ahead.build_one(time.perf_counter())  # the next handoff is due now
    assert log == []
    request, post = ahead.take(0)
    assert request.prompt_len == 1 and post.content == b"1" * 10 and log == [1]


def test_the_byte_budget_stops_building(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ahead_module, "AHEAD_BYTES", 15)
    log: list[int] = []
    ahead = builder(log)
    far = time.perf_counter() + 60.0
    built = 0
    while ahead.build_one(far):
        built += 1
    assert built == 2  # 10 bytes, then 20 >= 15: no third
    ahead.take(0)
    assert ahead.build_one(far)  # taking one frees its bytes


def test_taking_out_of_order_is_an_error() -> None:
    ahead = builder([])
    ahead.build_one(time.perf_counter() + 60.0)
    with pytest.raises(ValueError, match="out of order"):
        ahead.take(2)
    fresh = builder([])
    with pytest.raises(ValueError, match="out of order"):
        fresh.take(4)

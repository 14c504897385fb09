"""Fixtures for the runners tests: async test modules opt in to run on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Make `asyncio.run` use the named event loop for the test (Ray's workers run uvloop).

    uvloop comes with the dev extra: without it the uvloop variants error, they never skip.
    """
    if request.param == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield str(request.param)
    finally:
        asyncio.set_event_loop_policy(None)

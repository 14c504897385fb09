"""Fixtures of the reliability suite: one throwaway PostgreSQL server for the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pg_cluster import ENV_URL, find_bin_dir, pg_cluster


@pytest.fixture(scope="package")
def postgres_server() -> Iterator[str]:
    if find_bin_dir() is None and ENV_URL not in os.environ:
        pytest.skip("no PostgreSQL binaries on this machine")
    with pg_cluster() as url:
        yield url

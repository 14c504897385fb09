"""Fixtures shared by the optimizer tests."""

from __future__ import annotations

import pytest

from optimizer.spec import StudySpec, load_spec


@pytest.fixture(scope="module")
def spec() -> StudySpec:
    """The shipped qwen3-moe.yaml study, loaded once per test module."""
    return load_spec("qwen3-moe.yaml")

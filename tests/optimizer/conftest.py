"""Fixtures shared by the optimizer tests."""

from __future__ import annotations

import pytest

from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec


@pytest.fixture(scope="module")
def spec() -> StudySpec:
    """The shipped qwen3-moe.yaml study, loaded once per test module."""
    return load_spec("qwen3-moe.yaml")

"""Shared fixtures: the shipped space file as text, and a writer for edited copies of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from optimizer.spec.load import SEARCH_SPACES_DIR

SHIPPED = SEARCH_SPACES_DIR / "qwen3-moe.yaml"


@pytest.fixture
def shipped_space() -> dict[str, object]:
    loaded = yaml.safe_load(SHIPPED.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def write_space(tmp_path: Path) -> Callable[[dict[str, object]], Path]:
    def write(content: dict[str, object], name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        return path

    return write

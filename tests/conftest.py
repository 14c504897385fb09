"""Shared fixtures: the shipped space file as text, a writer for edited copies of it, and a
catalogue that forgets what a test registered (models read from config.json, inline GPUs), and
a short run of the real study command against a given storage."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from optimizer.cli import main
from optimizer.spec.load import SEARCH_SPACES_DIR
from runners.catalog import registry

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


@pytest.fixture(autouse=True)
def isolated_catalogue() -> Iterator[None]:
    """Whatever a test registers in the catalogue (and exports to the environment) is gone
    after it, so tests cannot see each other's models and GPUs."""
    tables = [
        (table, dict(table.entries), dict(table.names), set(table.builtin))
        for table in (registry.GPU_TABLE, registry.MODEL_TABLE)
    ]
    checkpoints = dict(registry.CHECKPOINTS)
    exported = os.environ.get(registry.CATALOG_ENV)
    yield
    for table, entries, names, builtin in tables:
        table.entries, table.names, table.builtin = entries, names, builtin
    registry.CHECKPOINTS.clear()
    registry.CHECKPOINTS.update(checkpoints)
    if exported is None:
        os.environ.pop(registry.CATALOG_ENV, None)
    else:
        os.environ[registry.CATALOG_ENV] = exported


StudyCli = Callable[[str], tuple[int, str, str]]


@pytest.fixture
def quick_study_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> StudyCli:
    """Run the real study command on the shipped qwen3-moe space for 2 trials, from inside
    tmp_path, with the given --storage; its exit status, stdout and stderr."""
    monkeypatch.chdir(tmp_path)

    def run(storage: str) -> tuple[int, str, str]:
        code = main(
            ["--space", "qwen3-moe.yaml", "--quiet", "--n-trials", "2", "--storage", storage]
        )
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run

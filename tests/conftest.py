"""Shared fixtures: the shipped space file as text, a writer for edited copies of it, and a
catalogue that forgets what a test registered (models read from config.json, inline GPUs), and
a short run of the real study command against a given storage.

Tests that patch a class or function of the simulator's loop modules are marked `python_loops`:
a compiled module's callers call each other directly, so such a patch would have no effect. When
the loops are compiled, those tests are deselected here and
tests/runners/test_sim_python_loops.py runs them in a subprocess on the sources
(SERVING_OPTIMIZER_PURE_PYTHON=1); the `monkeypatch` fixture refuses to patch a compiled loop
module's objects in any other test."""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from optimizer.cli import main
from optimizer.spec.load import SEARCH_SPACES_DIR
from runners.catalog import registry
from runners.sim import BUILD

SHIPPED = SEARCH_SPACES_DIR / "qwen3-moe.yaml"
PYTHON_LOOPS = "python_loops"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With compiled loops, `python_loops` tests run in test_sim_python_loops.py instead."""
    if BUILD != "compiled":
        return
    moved = [item for item in items if item.get_closest_marker(PYTHON_LOOPS)]
    if moved:
        config.hook.pytest_deselected(items=moved)
        items[:] = [item for item in items if not item.get_closest_marker(PYTHON_LOOPS)]


def _compiled_module(target: object) -> ModuleType | None:
    """The compiled (extension) module `target` is or belongs to, if any."""
    module = target if isinstance(target, ModuleType) else None
    if module is None:
        module = sys.modules.get(getattr(target, "__module__", "") or "")
    path = str(getattr(module, "__file__", "") or "")
    return module if path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)) else None


@pytest.fixture
def monkeypatch() -> Iterator[pytest.MonkeyPatch]:
    """pytest's own fixture, failing a test that patches what compiled loop modules would
    ignore (their callers do not look the patched name up)."""
    patch = pytest.MonkeyPatch()
    setattr_ = patch.setattr

    def checked(target: object, *args: object, **kwargs: object) -> None:
        compiled = _compiled_module(target)
        name = args[0] if args and isinstance(args[0], str) else ""
        # a class variable (such as an engine's `lockstep` switch) is read from the class,
        # compiled or not; a method or function is called directly by compiled callers
        if compiled is not None and callable(getattr(target, name, None)):
            pytest.fail(
                f"patching {target!r} has no effect on compiled callers in {compiled.__name__}; "
                f"mark the test @pytest.mark.{PYTHON_LOOPS} so it runs on the sources"
            )
        setattr_(target, *args, **kwargs)  # type: ignore[call-overload]

    patch.setattr = checked  # type: ignore[method-assign]
    yield patch
    patch.undo()


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

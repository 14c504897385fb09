"""Fuzzing the loader: whatever the file holds, `load_spec` raises `SpecError` or succeeds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.errors import SpecError
from optimizer.spec.load import SEARCH_SPACES_DIR, load_spec

SHIPPED: dict[str, Any] = yaml.safe_load((SEARCH_SPACES_DIR / "qwen3-moe.yaml").read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["inf", "auto", "fp8", "vllm", "0.33.0", "int", "categorical", "-1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


PATHS = _paths(SHIPPED)


def mutated(path: tuple[Any, ...], value: Any, delete: bool) -> str:
    """The shipped space as YAML with the node at `path` set to `value` (or deleted)."""
    space = copy.deepcopy(SHIPPED)
    node: Any = space
    for part in path[:-1]:
        node = node[part]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return yaml.safe_dump(space, sort_keys=False)


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_spec(path)
    except SpecError as exc:
        assert str(exc).startswith(str(path))


@pytest.mark.slow
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(PATHS), value=values, delete=st.booleans())
def test_mutated_shipped_space(
    tmp_path: Path, path: tuple[Any, ...], value: Any, delete: bool
) -> None:
    _load(tmp_path, mutated(path, value, delete))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_arbitrary_text(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.dictionaries(st.sampled_from(list(SHIPPED)), values, max_size=8))
def test_arbitrary_sections(tmp_path: Path, data: dict[str, Any]) -> None:
    _load(tmp_path, yaml.safe_dump(data))

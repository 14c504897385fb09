"""A fifth engine is its folder plus one registration: the toy engine passes the conformance
suite, a space file naming it loads and passes pre-flight, and the simulator refuses it clearly
because it has no simulator policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from optimizer.config import StudyConfig
from optimizer.errors import SpecError
from optimizer.feasibility import FeasibilityChecker
from optimizer.loop import run_study
from optimizer.space import baseline_params, candidate_from_params
from optimizer.spec.load import load_spec
from runners.catalog import get_gpu, get_model
from runners.engines import (
    engine_names,
    register,
    resolve,
    resolve_candidate,
    serve_command,
    unregister,
)
from runners.errors import EngineError
from runners.sim import simulate
from runners.sim.runner import SimRunner
from runners.testing.engine import TINY_WORKLOAD, EngineEntrySuite
from runners.types import Candidate, NodeGroup, Placement, ServingConfig
from tests.runners import toy_engine

H100X8 = NodeGroup("h100x8", "H100-SXM-80GB", 8)
NO_POLICY = "engine 'toy' has no simulator policy"


@pytest.fixture(autouse=True, scope="module")
def toy_registered() -> Iterator[None]:
    register(toy_engine.ENTRY)
    yield
    unregister("toy")


class TestToyEngine(EngineEntrySuite):
    engine = "toy"


def toy(settings: dict[str, Any] | None = None) -> Candidate:
    return Candidate.make(
        "toy", "1.1", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", settings or {}
    )


def test_registration_is_one_call_and_undone_by_unregister() -> None:
    assert "toy" in engine_names()
    assert serve_command(toy({"workers": 2, "prefix-cache": False}), H100X8) == (
        "toy-serve Qwen/Qwen3-30B-A3B --workers 2 --no-prefix-cache"
    )


def test_the_simulator_refuses_the_toy_until_it_has_a_policy() -> None:
    placement = Placement(H100X8, (0,))
    with pytest.raises(EngineError, match=NO_POLICY):
        SimRunner().run(toy(), TINY_WORKLOAD, placement)
    config = resolve(toy(), H100X8)
    assert isinstance(config, ServingConfig)
    with pytest.raises(EngineError, match=NO_POLICY):
        simulate(config, TINY_WORKLOAD)


def toy_space(shipped_space: dict[str, Any]) -> dict[str, Any]:
    space = dict(shipped_space)
    space["name"] = "toy-study"
    space["model"] = {"name": "Qwen3-30B-A3B", "variants": {"bf16": "Qwen/Qwen3-30B-A3B"}}
    space["engines"] = {
        "toy": {
            "version": "1.1",
            "settings": {
                "workers": {"type": "categorical", "choices": [1, 2, 4]},
                "max-batch": {"type": "int", "low": 16, "high": 256, "log": True},
                "prefix-cache": {"type": "bool"},
            },
        }
    }
    space["baseline"] = {"engine": "toy", "variant": "bf16", "settings": {}}
    return space


def test_a_space_file_naming_the_toy_loads_and_passes_pre_flight(
    write_space: Callable[[dict[str, Any]], Path], shipped_space: dict[str, Any]
) -> None:
    spec = load_spec(write_space(toy_space(shipped_space)))
    assert list(spec.engines) == ["toy"]
    params = baseline_params(spec, get_model("Qwen3-30B-A3B"), get_gpu(spec.node_group.gpu))
    candidate = candidate_from_params(spec, params)
    assert candidate.engine == "toy"
    resolved = resolve_candidate(candidate, spec.node_group)
    verdict = FeasibilityChecker(spec).check(resolved, params, {}, [])
    assert verdict.launch, verdict


def test_a_study_of_the_toy_on_the_simulator_stops_with_the_policy_error(
    tmp_path: Path,
    write_space: Callable[[dict[str, Any]], Path],
    shipped_space: dict[str, Any],
) -> None:
    path = write_space(toy_space(shipped_space))
    url = f"sqlite:///{tmp_path / 'toy.db'}"
    config = StudyConfig.of(
        load_spec(path), storage=url, study_name="toy-study", n_trials=2, seed=0, quiet=True
    )
    with pytest.raises(EngineError, match=NO_POLICY):
        run_study(config, SimRunner())


def test_once_unregistered_a_space_naming_it_is_an_error(
    write_space: Callable[[dict[str, Any]], Path], shipped_space: dict[str, Any]
) -> None:
    path = write_space(toy_space(shipped_space))
    unregister("toy")
    try:
        with pytest.raises(SpecError, match=r"engines\.toy: unknown engine 'toy'"):
            load_spec(path)
    finally:
        register(toy_engine.ENTRY)

"""Engine-default anchors: one feasible defaults trial per engine and checkpoint, once."""

from __future__ import annotations

import contextlib
import io

import optuna
from optuna.storages import InMemoryStorage

from optimizer.anchors import engine_default_anchors
from optimizer.config import StudyConfig
from optimizer.feasibility import FeasibilityChecker
from optimizer.loop import run_study
from optimizer.record import ANCHOR
from optimizer.space import baseline_params, candidate_from_params
from optimizer.spec.models import StudySpec
from runners.engines import resolve_candidate, serve_command
from runners.sim.runner import SimRunner


def test_one_feasible_anchor_per_engine_and_checkpoint(spec: StudySpec) -> None:
    anchors = engine_default_anchors(spec)
    labels = [label for label, _ in anchors]
    assert len(labels) == len(set(labels))
    assert "vllm bf16 defaults" not in labels, "the baseline is not repeated"
    assert {"vllm fp8 defaults", "sglang bf16 defaults", "trtllm bf16 defaults"} <= set(labels)
    checker = FeasibilityChecker(spec, learned=False)
    for _, params in anchors:
        assert params != baseline_params(spec)
        resolved = resolve_candidate(candidate_from_params(spec, params), spec.node_group)
        assert checker.check(resolved, params, {}, []).launch


def test_anchor_is_the_smallest_parallelism_that_fits_with_defaults(spec: StudySpec) -> None:
    anchors = dict(engine_default_anchors(spec))
    command = serve_command(
        candidate_from_params(spec, anchors["vllm fp8 defaults"]), spec.node_group
    )
    # FP8 fits in 4 GPUs and every other vLLM setting is its default: nothing else is printed
    assert command == "vllm serve Qwen/Qwen3-235B-A22B-Instruct-2507-FP8 --tensor-parallel-size 4"
    sglang_bf16 = anchors["sglang bf16 defaults"]
    assert sglang_bf16["sglang.tp-size"] == 8, "BF16 does not fit in 4 H100s"


def test_driver_runs_anchors_after_the_baseline_once(spec: StudySpec) -> None:
    storage = InMemoryStorage()
    for total in (10, 14):
        config = StudyConfig.of(
            spec,
            storage="memory",
            study_name="a",
            n_trials=total,
            sampler="tpe",
            seed=0,
            quiet=True,
        )
        with contextlib.redirect_stdout(io.StringIO()):
            run_study(config, SimRunner(), storage=storage)
    trials = optuna.load_study(study_name="a", storage=storage).trials
    anchored = [t for t in trials if ANCHOR in t.user_attrs]
    assert [t.user_attrs[ANCHOR] for t in anchored] == [
        label for label, _ in engine_default_anchors(spec)
    ]
    assert trials[0].user_attrs.get("baseline") is True
    assert [t.number for t in anchored] == list(range(1, 1 + len(anchored)))

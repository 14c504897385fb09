"""Malformed space files: one paragraph naming file, field path and fix; exit 2; nothing written.

Each case edits a copy of the shipped qwen3-moe.yaml (or writes raw text) and runs the real
command line in-process (`optimizer.study.main`) from an empty directory.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from optimizer import study
from optimizer.spec.load import SEARCH_SPACES_DIR

Space = dict[str, Any]
SHIPPED: Space = yaml.safe_load((SEARCH_SPACES_DIR / "qwen3-moe.yaml").read_text())


def _vllm(space: Space) -> Space:
    settings: Space = space["engines"]["vllm"]["settings"]
    return settings


def _set(path: str, value: object) -> Callable[[Space], None]:
    def edit(space: Space) -> None:
        *parents, leaf = path.split("/")
        node: Any = space
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value

    return edit


def _delete(path: str) -> Callable[[Space], None]:
    def edit(space: Space) -> None:
        *parents, leaf = path.split("/")
        node: Any = space
        for part in parents:
            node = node[part]
        del node[leaf]

    return edit


def _rename_setting(old: str, new: str, engine: str = "vllm") -> Callable[[Space], None]:
    def edit(space: Space) -> None:
        settings = space["engines"][engine]["settings"]
        space["engines"][engine]["settings"] = {
            (new if k == old else k): v for k, v in settings.items()
        }

    return edit


def _add_constraint(require: str) -> Callable[[Space], None]:
    def edit(space: Space) -> None:
        space["engines"]["vllm"]["constraints"] = [{"name": "mine", "require": require}]

    return edit


# (case id, edit, substrings the message must contain: field path and the fix)
CASES: list[tuple[str, Callable[[Space], None], tuple[str, ...]]] = [
    ("unknown-engine", _set("engines/tgi", {"version": "1.0"}), ("engines.tgi", "vllm")),
    ("unknown-top-field", _set("sampler", "tpe"), ("sampler", "unknown field")),
    ("missing-section", _delete("workload"), ("workload", "Field required")),
    (
        "removed-flag",
        _set("engines/vllm/settings/swap-space", {"type": "float", "low": 1, "high": 4}),
        ("engines.vllm.settings.swap-space", "removed in 0.18"),
    ),
    (
        "flag-not-yet-in-version",
        lambda s: (
            _set("engines/vllm/version", "0.11.0")(s),
            _delete("engines/vllm/settings/performance-mode")(s),
            _delete("engines/vllm/settings/moe-backend")(s),
            _delete("engines/vllm/settings/enable-chunked-prefill")(s),
        ),
        ("engines.vllm.settings.attention-backend", "VLLM_ATTENTION_BACKEND"),
    ),
    (
        "misspelled-setting",
        _rename_setting("max-num-seqs", "max-num-seq"),
        ("engines.vllm.settings.max-num-seq", "did you mean 'max-num-seqs'"),
    ),
    (
        "underscore-spelling",
        _rename_setting("max-num-seqs", "max_num_seqs"),
        ("engines.vllm.settings.max_num_seqs", "write this setting as 'max-num-seqs'"),
    ),
    (
        "other-engines-setting",
        _set(
            "engines/vllm/settings/mem-fraction-static", {"type": "float", "low": 0.7, "high": 0.9}
        ),
        ("vllm 0.33.0 has no setting",),
    ),
    (
        "wrong-type-name",
        _set("engines/vllm/settings/max-num-seqs/type", "integer"),
        ("engines.vllm.settings.max-num-seqs", "type"),
    ),
    ("string-for-number", _set("workload/num_prompts", "many"), ("workload.num_prompts",)),
    (
        "empty-choices",
        _set("engines/vllm/settings/kv-cache-dtype/choices", []),
        ("engines.vllm.settings.kv-cache-dtype", "at least 1"),
    ),
    (
        "min-above-max",
        _set("engines/vllm/settings/max-num-seqs/low", 4096),
        ("engines.vllm.settings.max-num-seqs", "must not exceed high"),
    ),
    (
        "log-with-step",
        _set("engines/vllm/settings/max-num-seqs/step", 8),
        ("engines.vllm.settings.max-num-seqs", "log: true needs step 1"),
    ),
    (
        "int-step-zero",
        _set(
            "engines/vllm/settings/max-num-seqs", {"type": "int", "low": 8, "high": 64, "step": 0}
        ),
        ("engines.vllm.settings.max-num-seqs", "step (0) must be a whole number >= 1"),
    ),
    (
        "float-step-zero",
        _set("engines/vllm/settings/gpu-memory-utilization/step", 0),
        ("engines.vllm.settings.gpu-memory-utilization", "step (0", "must be above 0"),
    ),
    (
        "float-step-below-precision",
        _set("engines/vllm/settings/gpu-memory-utilization/step", 1e-300),
        ("engines.vllm.settings.gpu-memory-utilization", "more than 1,000,000 values"),
    ),
    (
        "value-engine-rejects",
        _set("engines/vllm/settings/gpu-memory-utilization/high", 1.5),
        ("engines.vllm.settings.gpu-memory-utilization", "above the maximum 1"),
    ),
    (
        "invalid-choice",
        _set("engines/vllm/settings/performance-mode/choices", ["balanced", "turbo"]),
        ("performance-mode: choice 'turbo'", "balanced"),
    ),
    (
        "bool-for-int",
        _set("engines/sglang/settings/tp-size/choices", [True, 8]),
        ("engines.sglang.settings.tp-size", "expected a number"),
    ),
    (
        "condition-on-unknown",
        _set("engines/vllm/settings/max-num-seqs/when", {"enable-chunked-prefil": True}),
        ("when.enable-chunked-prefil", "declared above"),
    ),
    (
        "condition-unreachable",
        _set("engines/vllm/settings/data-parallel-size/when", {"tensor-parallel-size": [3, 4]}),
        ("3 can never be chosen",),
    ),
    (
        "alternatives-without-when",
        _set("engines/vllm/settings/max-num-batched-tokens/1/when", {}),
        ("max-num-batched-tokens", "needs its own 'when'"),
    ),
    (
        "tp-larger-than-node",
        _set("engines/vllm/settings/tensor-parallel-size/choices", [8, 16]),
        (
            "hardware.node_groups.0.nodes: the node group (1 node of 8 x H100-SXM-80GB) is too "
            "small for engines.vllm.settings.tensor-parallel-size = 16",
            "set nodes: 2 or more",
        ),
    ),
    (
        "tp-not-dividing-heads",
        _set("engines/sglang/settings/tp-size/choices", [4, 8, 6]),
        ("tp-size: 6 can never run", "attention heads (64)"),
    ),
    ("unknown-model", _set("model/name", "Qwen9-1T"), ("model.name", "Qwen3-235B-A22B")),
    (
        "unknown-gpu",
        _set("hardware/node_groups/0/gpu", "H900"),
        ("hardware.node_groups.0.gpu", "H100-SXM-80GB"),
    ),
    (
        "garbage-version",
        _set("engines/vllm/version", "latest"),
        ("engines.vllm.version", "not a version number"),
    ),
    (
        "baseline-engine-not-searched",
        _delete("engines/vllm"),
        ("baseline.engine", "not among the engines"),
    ),
    (
        "baseline-default-unreachable",
        _set("engines/vllm/settings/max-num-seqs/high", 512),
        ("max-num-seqs: the baseline needs 1024", "widen it"),
    ),
    (
        "baseline-unknown-setting",
        _set("baseline/settings/tp", 8),
        ("baseline.settings.tp", "no setting 'tp'"),
    ),
    (
        "baseline-variant-missing",
        _delete("model/variants/bf16"),
        ("baseline.variant", "not among model.variants"),
    ),
    ("bad-study-name", _set("name", "my study!"), ("name", "pattern")),
    (
        "constraint-syntax",
        _add_constraint("max-num-seqs >= "),
        ("engines.vllm.constraints.0.require", "not a valid expression"),
    ),
    (
        "constraint-unknown-name",
        _add_constraint("max-num-seq >= 8"),
        ("engines.vllm.constraints.0.require", "unknown name 'max-num-seq'"),
    ),
    (
        "constraint-minus-without-spaces",
        _add_constraint("max-num-batched-tokens-max-num-seqs > 0"),
        ("constraints.0.require", "subtraction with spaces"),
    ),
    (
        "baseline-breaks-constraint",
        _add_constraint("tensor-parallel-size == 4"),
        ("baseline", "breaks rule 'user:mine'"),
    ),
    ("negative-request-rate", _set("workload/request_rate", -1), ("workload.request_rate",)),
]

RAW_CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("yaml-syntax", "name: x\nmodel: [unclosed\n", ("line", "not valid YAML")),
    ("not-a-mapping", "- a\n- b\n", ("must be a YAML mapping",)),
    ("empty-file", "", ("must be a YAML mapping",)),
    (
        "duplicate-setting",
        (SEARCH_SPACES_DIR / "qwen3-moe.yaml")
        .read_text()
        .replace(
            "      max-num-seqs: {type: int, low: 32, high: 1024, log: true}\n",
            "      max-num-seqs: {type: int, low: 32, high: 1024, log: true}\n"
            "      max-num-seqs: {type: int, low: 64, high: 1024, log: true}\n",
        ),
        ("'max-num-seqs' is given twice", "keep one"),
    ),
]


def _run(
    tmp_path: Path,
    space_file: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...] = (),
) -> str:
    code = study.main(["--space", str(space_file), "--n-trials", "2", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert not (tmp_path / "studies").exists(), "nothing is written for a bad space file"
    message = err.strip()
    assert message.startswith(f"error: {space_file}"), "the message names the file"
    assert "\n" not in message, "one paragraph"
    return message


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_space_is_one_clear_error(
    edit: Callable[[Space], None],
    expected: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    space = copy.deepcopy(SHIPPED)
    edit(space)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    message = _run(tmp_path, path, capsys)
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
def test_malformed_file_is_one_clear_error(
    text: str,
    expected: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "space.yaml"
    path.write_text(text)
    message = _run(tmp_path, path, capsys)
    for part in expected:
        assert part in message, message


def test_strict_versions_refuse_an_uncatalogued_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    space = copy.deepcopy(SHIPPED)
    space["engines"]["sglang"]["version"] = "0.3.1"
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    message = _run(tmp_path, path, capsys, ("--strict-versions",))
    for part in ("engines.sglang.version", "not in the catalogue", "0.5.4", "--strict-versions"):
        assert part in message, message


def test_there_are_at_least_25_distinct_cases() -> None:
    ids = [c[0] for c in CASES] + [c[0] for c in RAW_CASES] + ["strict-versions"]
    assert len(set(ids)) == len(ids) >= 25

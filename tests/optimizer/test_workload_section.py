"""The space file's workload section: sources, paths relative to the space file, the fields each
source takes, and bad workload files as one clear error at the command line (exit 2, nothing
stored)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from optimizer import study
from optimizer.identity import space_sections
from optimizer.spec.load import SEARCH_SPACES_DIR, load_spec
from optimizer.validate import Validator
from runners.sim.runner import SimRunner
from runners.workload import make_requests

SHIPPED: dict[str, Any] = yaml.safe_load((SEARCH_SPACES_DIR / "qwen3-moe.yaml").read_text())
TRACE = [
    {"timestamp": 40 * i, "input_length": 700 + i, "output_length": 20, "hash_ids": [1, 2 + i]}
    for i in range(30)
]


def space_with(tmp_path: Path, workload: dict[str, object], **validation: object) -> Path:
    space = copy.deepcopy(SHIPPED)
    space["name"] = "wl"
    space["workload"] = workload
    space["engines"] = {"vllm": space["engines"]["vllm"]}
    if validation:
        space["validation"] = {**space.get("validation", {}), **validation}
    folder = tmp_path / "spaces"
    folder.mkdir(exist_ok=True)
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def write_trace(folder: Path, name: str = "trace.jsonl", rows: list[Any] = TRACE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


MOONCAKE = {"name": "mc", "dataset": "mooncake", "path": "traces/trace.jsonl", "num_prompts": 20}


def test_a_trace_path_is_relative_to_the_space_file(tmp_path: Path) -> None:
    space = space_with(tmp_path, MOONCAKE)
    write_trace(space.parent / "traces")
    spec = load_spec(space)
    workload = spec.workload_spec
    assert workload.path == str(space.parent / "traces" / "trace.jsonl")
    assert workload.tokenizer == ""  # a trace of token counts needs no tokenizer
    requests = make_requests(workload)
    assert requests.size == 20 and requests.chains is not None


def test_a_study_and_its_validation_run_on_a_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    other = {**MOONCAKE, "name": "mc-fast", "time_scale": 0.25, "window_s": 600.0}
    space = space_with(tmp_path, MOONCAKE, workloads=[other], repeats=2, top=1, concurrency=[8])
    write_trace(space.parent / "traces")
    assert study.main(["--space", str(space), "--n-trials", "3", "--quiet"]) == 0
    stored = optuna.load_study(study_name="wl", storage="sqlite:///studies/wl.db")
    completed = [t for t in stored.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert completed and all(t.user_attrs["metrics"]["completed"] == 20 for t in completed)
    spec = load_spec(space)
    loads = Validator(spec, stored, SimRunner()).workloads
    assert [w.name for w in loads] == ["mc-fast"] and loads[0].time_scale == 0.25


def test_fields_that_do_not_fit_the_source_are_refused(tmp_path: Path) -> None:
    from optimizer.errors import SpecError

    cases = [
        ({**MOONCAKE, "path": None}, "workload.path: dataset mooncake reads a file"),
        ({**MOONCAKE, "turns": 3}, "turns: applies to synthetic datasets only"),
        (
            {"name": "s", "dataset": "random", "num_prompts": 5, "input_len": 4, "output_len": 2,
             "path": "x.jsonl"},
            "dataset random is synthetic and reads no file",
        ),
        (
            {"name": "s", "dataset": "sharegpt-like", "num_prompts": 5, "time_scale": 2},
            "time_scale: applies to files only",
        ),
        (
            {"name": "s", "dataset": "sharegpt-like", "num_prompts": 5, "burstiness": 0.5},
            "burstiness: shapes the gaps of a finite request_rate",
        ),
        (
            {"name": "s", "dataset": "sharegpt-like", "num_prompts": 5, "prefix_len": 64},
            "prefix_len and prefix_groups go together",
        ),
        ({**MOONCAKE, "dataset": "parquet"}, "workload.dataset: must be 'sharegpt-like'"),
    ]  # fmt: skip
    for workload, expected in cases:
        space = space_with(tmp_path, workload)
        write_trace(space.parent / "traces")
        with pytest.raises(SpecError) as caught:
            load_spec(space)
        assert expected in str(caught.value), (workload, str(caught.value))


def test_synthetic_sessions_and_prefixes_reach_the_runner(tmp_path: Path) -> None:
    workload = {
        "name": "chat", "dataset": "random", "num_prompts": 60, "input_len": 200,
        "output_len": 40, "request_rate": 10, "burstiness": 0.5, "prefix_len": 512,
        "prefix_groups": 3, "turns": 4, "max_concurrency": 16,
    }  # fmt: skip
    spec = load_spec(space_with(tmp_path, workload))
    w = spec.workload_spec
    assert (w.prefix_len, w.prefix_groups, w.turns, w.burstiness) == (512, 3, 4, 0.5)
    requests = make_requests(w)
    assert requests.parent is not None and requests.chains is not None


def test_the_identity_of_a_space_without_new_fields_is_unchanged() -> None:
    """Studies stored before the workload sources existed keep resuming."""
    spec = load_spec("qwen3-moe.yaml")
    assert space_sections(spec)["workload"] == "96390f09692f"  # as before the new fields


BAD_FILES: list[tuple[str, str | None, str]] = [
    # (case, file content or None for no file, expected part after "<space>: workload: <file>")
    ("missing-file", None, ": no such file (paths are relative to the space file)"),
    (
        "malformed-line-in-the-middle",
        json.dumps(TRACE[0]) + "\n{not json\n" + json.dumps(TRACE[2]) + "\n",
        ":2: not valid JSON",
    ),
    (
        "timestamps-backwards",
        "".join(json.dumps(r) + "\n" for r in [TRACE[3], TRACE[1], TRACE[4]]),
        ":2: timestamp 0.04 s goes backwards (line 1 has 0.12 s)",
    ),
    ("empty-file", "", ": the file is empty"),
    ("unknown-format", "PK\x03\x04 binary zip\n", ":1: not valid JSON"),
]


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_a_bad_workload_file_is_one_error_with_exit_2_and_nothing_stored(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    space = space_with(tmp_path, MOONCAKE)
    trace = space.parent / "traces" / "trace.jsonl"
    if content is not None:
        trace.parent.mkdir(parents=True)
        trace.write_text(content)
    code = study.main(["--space", str(space), "--n-trials", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and "\n" not in err
    assert err.startswith(f"error: {space}: workload: {trace}{expected}"), err
    assert not (tmp_path / "studies").exists()


def test_a_bad_file_of_a_validation_workload_is_named_by_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    other = {**MOONCAKE, "name": "other", "path": "traces/absent.jsonl"}
    space = space_with(tmp_path, MOONCAKE, workloads=[other])
    write_trace(space.parent / "traces")
    assert study.main(["--space", str(space), "--n-trials", "2"]) == 2
    err = capsys.readouterr().err
    assert f"validation.workloads.0: {space.parent / 'traces' / 'absent.jsonl'}: no such" in err
    assert not (tmp_path / "studies").exists()

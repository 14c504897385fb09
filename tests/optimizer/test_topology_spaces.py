"""Instances spanning nodes in space files, and the four shipped spaces of what users run.

A node group too small for an instance is one clear error naming the file, the field and the
fix (exit 2, nothing written); the new shipped spaces load and run a short study on the
simulator; the README lists every shipped space."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from optimizer import study
from optimizer.spec.load import SEARCH_SPACES_DIR, load_spec
from tests.optimizer.test_open_world_spec import space

ROOT = Path(__file__).resolve().parent.parent.parent
H100 = "H100-SXM-80GB"
NEW_SPACES = (
    "mixtral-8x7b-l40s.yaml",
    "deepseek-v3-2x8-h100.yaml",
    "qwen3-32b-awq-l4.yaml",
    "phi-4-from-config.yaml",
)
MOE = "Qwen3-235B-A22B-Instruct-2507"
SPACE: dict[str, Any] = space({"name": MOE, "variants": {"bf16": f"Qwen/{MOE}"}}, H100, 8)
SPACE["name"] = "spanning"
SPACE["baseline"]["settings"] = {"tensor-parallel-size": 8}
SPACE["engines"]["vllm"]["settings"] = {
    "tensor-parallel-size": {"type": "categorical", "choices": [8, 16]}
}
SPACE["search"]["n_trials"] = 2


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def run(path: Path | str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    fixed = () if "--n-trials" in extra else ("--n-trials", "2")  # the file's n_trials
    code = study.main(["--space", str(path), "--quiet", *fixed, *extra])
    return code, capsys.readouterr().err


def write(tmp_path: Path, content: dict[str, Any]) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("case", "nodes", "version", "baseline_tp", "expected"),
    [
        (
            "a searched value",
            1,
            "0.33.0",
            8,
            (
                "hardware.node_groups.0.nodes: the node group (1 node of 8 x H100-SXM-80GB) is "
                "too small for engines.vllm.settings.tensor-parallel-size = 16: one instance "
                "needs 16 GPUs (2 nodes of 8)",
                "set nodes: 2 or more",
                "or remove 16 from engines.vllm.settings.tensor-parallel-size",
            ),
        ),
        (
            "the baseline",
            1,
            "0.33.0",
            16,
            (
                "hardware.node_groups.0.nodes: the node group (1 node of 8 x H100-SXM-80GB) is "
                "too small for",
                "set nodes: 2 or more",
            ),
        ),
        (
            "a release that cannot span nodes",
            2,
            "0.11.0",
            8,
            (
                "hardware.node_groups.0.gpus_per_node: engines.vllm.settings.tensor-parallel-size"
                " = 16 needs 16 GPUs in one instance, and vllm 0.11.0 runs an instance on one "
                "node (2 nodes of 8 x H100-SXM-80GB)",
                "use nodes of 16 GPUs or more, an engine release that spans nodes",
            ),
        ),
    ],
)
def test_a_node_group_too_small_for_an_instance_is_one_clear_error(
    case: str,
    nodes: int,
    version: str,
    baseline_tp: int,
    expected: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    content = copy.deepcopy(SPACE)
    content["hardware"]["node_groups"][0]["nodes"] = nodes
    content["engines"]["vllm"]["version"] = version
    content["baseline"]["settings"]["tensor-parallel-size"] = baseline_tp
    path = write(tmp_path, content)
    code, err = run(path, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    message = err.strip()
    assert message.startswith(f"error: {path}"), message
    assert "\n" not in message, "one paragraph"
    for part in expected:
        assert part in message, message
    assert not (tmp_path / "studies").exists(), "nothing is written"


def test_the_same_space_over_two_nodes_runs_and_spans_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = copy.deepcopy(SPACE)
    content["hardware"]["node_groups"][0].update(
        nodes=2, network={"kind": "infiniband", "nics": 8, "gbit_s": 400}
    )
    content["baseline"]["settings"]["tensor-parallel-size"] = 16
    path = write(tmp_path, content)
    url = f"sqlite:///{tmp_path / 's.db'}"
    code, err = run(path, capsys, "--storage", url)
    assert code == 0, err
    [trial, *_] = optuna.load_study(study_name="spanning", storage=url).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.params["vllm.tensor-parallel-size"] == 16
    assert trial.user_attrs["serve_command"].startswith("[node 0] vllm serve")


@pytest.mark.parametrize("name", NEW_SPACES)
def test_each_new_shipped_space_runs_a_short_study_on_the_simulator(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = load_spec(name)
    url = f"sqlite:///{tmp_path / 's.db'}"
    code, err = run(name, capsys, "--storage", url, "--n-trials", "3")
    assert code == 0, err
    trials = optuna.load_study(study_name=spec.name, storage=url).trials
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done, [t.user_attrs.get("crash_message") for t in trials]
    if name == "deepseek-v3-2x8-h100.yaml":
        group = spec.node_group
        assert (group.nodes, group.gpus_per_node, group.inter_node_gb_s) == (2, 8, 50.0)
        assert all(t.user_attrs["serve_command"].startswith("[node 0]") for t in done)


def test_the_readme_lists_every_shipped_space() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Shipped spaces", 1)[1].split("\n#", 1)[0]
    listed = set(re.findall(r"`([a-z0-9.-]+\.yaml)`", section))
    assert listed == {p.name for p in SEARCH_SPACES_DIR.glob("*.yaml")}

"""The runner side of real-run settings: deadlines, the engine's environment, model paths.

The user's environment reaches the engine unchanged; the offline variables are set only when
asked for or when the model is only in the local Hugging Face cache; a local checkpoint path is
made absolute on the driver and a path missing on the node is a deterministic
``setup:model_missing`` crash naming path and node, with nothing started.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runners.checkpoint import (
    absolute_checkpoint,
    in_hf_cache,
    is_local_path,
    missing_checkpoint,
    offline_reason,
)
from runners.launch import EmulatorLaunch, Launcher
from runners.local import LocalRunner, RealRunSettings
from runners.pool import InlinePool
from runners.process import EngineProcess, StartExited
from runners.settings import OFFLINE_ENV, engine_env
from runners.types import (
    Candidate,
    CrashClass,
    LaunchSpec,
    NodeGroup,
    Placement,
    TrialOutcome,
    Workload,
)

NODE = NodeGroup("h100", "H100-SXM-80GB", 8)
PLACEMENT = Placement(NODE, tuple(range(8)))
REPO = "Qwen/Qwen3-30B-A3B"


def candidate(checkpoint: str = REPO) -> Candidate:
    return Candidate.make("vllm", "0.33.0", "Qwen3-30B-A3B", checkpoint, "bf16", {})


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face hub cache for this test, found through HF_HUB_CACHE."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def cache_snapshot(cache: Path, repo_id: str) -> None:
    (cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / "abc123").mkdir(parents=True)


def test_deadlines_must_be_positive() -> None:
    assert RealRunSettings(start_deadline_s=3600.0).start_deadline_s == 3600.0
    with pytest.raises(ValueError, match="start_deadline_s must be a positive"):
        RealRunSettings(start_deadline_s=0)


def test_no_offline_variables_unless_asked_or_only_cached(hf_cache: Path) -> None:
    settings = RealRunSettings()
    assert offline_reason(settings, REPO) == ""
    assert not set(OFFLINE_ENV) & set(engine_env(settings, Path("c"), offline=False))
    assert "asked" in offline_reason(RealRunSettings(offline=True), REPO)
    cache_snapshot(hf_cache, REPO)
    assert in_hf_cache(REPO)
    assert "local Hugging Face cache" in offline_reason(settings, REPO)
    assert offline_reason(settings, "Qwen/Qwen3-8B") == "", "another model is not cached"


def test_a_local_path_needs_no_offline_mode(tmp_path: Path, hf_cache: Path) -> None:
    assert offline_reason(RealRunSettings(), str(tmp_path)) == ""


def test_the_launcher_environment_follows_the_policy(tmp_path: Path, hf_cache: Path) -> None:
    launcher = Launcher(RealRunSettings(env=(("VLLM_CACHE_ROOT", "/mine"), ("X", "1"))), tmp_path)
    env = launcher.environment(candidate())
    assert env["VLLM_HOST_IP"] == "127.0.0.1" and env["DO_NOT_TRACK"] == "1"
    assert env["VLLM_CACHE_ROOT"] == "/mine" and env["X"] == "1", "explicit variables win"
    assert "HF_HUB_OFFLINE" not in env and "TRANSFORMERS_OFFLINE" not in env
    cache_snapshot(hf_cache, REPO)
    assert launcher.environment(candidate())["HF_HUB_OFFLINE"] == "1"


def test_the_users_environment_reaches_the_engine_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("USER_CHOICE", "kept")
    program = "import os; print(os.environ['HF_HUB_OFFLINE'], os.environ['USER_CHOICE'])"
    spec = LaunchSpec(argv=(sys.executable, "-c", program), port=1)
    extra = engine_env(RealRunSettings(), tmp_path / "cache", offline=False)
    engine = EngineProcess(spec, tmp_path, tmp_path / "engine.log", extra)
    engine.start()
    exited = engine.wait_ready(30.0)  # the program prints and exits: never "ready"
    assert isinstance(exited, StartExited) and exited.exit_code == 0, engine.log_text()
    assert engine.log_text().split() == ["0", "kept"]
    recorded = json.loads((tmp_path / "launch.json").read_text())["env"]
    assert "HF_HUB_OFFLINE" not in recorded and recorded["VLLM_NO_USAGE_STATS"] == "1"


def test_local_paths_are_made_absolute_and_repo_ids_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    assert absolute_checkpoint(candidate("models/tiny")).checkpoint == str(
        tmp_path / "models/tiny"
    )
    assert absolute_checkpoint(candidate("./elsewhere")).checkpoint == str(tmp_path / "elsewhere")
    assert absolute_checkpoint(candidate("~/w")).checkpoint == str(Path.home() / "w")
    assert absolute_checkpoint(candidate(REPO)) == candidate(REPO)
    assert not is_local_path(REPO) and is_local_path("/x") and is_local_path("models/tiny")


def test_the_inline_pool_dispatches_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    class Recorder:
        def run(self, cand: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
            seen.append(cand.checkpoint)
            return TrialOutcome("crashed")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    pool = InlinePool(Recorder(), NODE)
    pool.submit(0, candidate("weights"), Workload("w", "random", 1, 4, 4))
    pool.wait(1.0)
    assert seen == [str(tmp_path / "weights")]


def test_a_path_missing_on_the_node_names_path_and_node(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    crash = missing_checkpoint(candidate(str(missing)), "node-7")
    assert crash is not None
    assert crash.crash_class == CrashClass.MODEL_MISSING == "setup:model_missing"
    assert str(missing) in crash.message and "node-7" in crash.message
    assert missing_checkpoint(candidate(str(tmp_path)), "node-7") is None
    assert missing_checkpoint(candidate(REPO), "node-7") is None


def test_the_runner_starts_nothing_for_a_missing_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    runner = LocalRunner(tmp_path, emulator=EmulatorLaunch(time_scale=20.0, startup_s=0.2))
    missing = str(tmp_path / "gone")
    first = runner.run(candidate(missing), Workload("w", "random", 4, 8, 4), PLACEMENT)
    second = runner.run(candidate(missing), Workload("w", "random", 4, 8, 4), PLACEMENT)
    assert started == []
    assert first.status == "crashed" and first.crash is not None
    assert first.crash.crash_class == CrashClass.MODEL_MISSING
    assert socket.gethostname() in first.crash.message
    assert (first.crash, first.replicas, first.artifacts) == (second.crash, 0, ())
    assert list(tmp_path.iterdir()) == [], "no trial folder, no cache: nothing was set up"

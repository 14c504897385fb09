"""`--runner local` on a machine without the engine: exit 2, the missing engine and the Python
environment named, nothing stored.

Both cases are real, not mocked: SGLang is not installed here, and for vLLM the study runs
with a `vllm` package first on its path that cannot be imported (as a broken install is), in
the driver and in every process it starts. Before the readiness check, both ran three trials
that each failed to start and exited 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from optimizer.spec.load import SEARCH_SPACES_DIR

ROOT = Path(__file__).resolve().parents[2]


def fake_model(cwd: Path) -> None:
    """The files readiness looks for, where the tiny space expects its model."""
    folder = cwd / "models" / "tiny-qwen3-moe"
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / name).write_text("{}")


def run_study(cwd: Path, space: str, pythonpath: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optimizer.study", "--space", space, "--runner", "local"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_refused_and_nothing_stored(done: subprocess.CompletedProcess[str], cwd: Path) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: not ready for real trials")
    assert f"Python environment {sys.executable}" in done.stderr
    assert "] trial " not in done.stdout, "no trial ran"
    assert not (cwd / "studies").exists(), "nothing stored: no database, no study folder"


def test_without_vllm_the_study_exits_2_naming_the_engine_and_python(tmp_path: Path) -> None:
    broken = tmp_path / "site"
    (broken / "vllm").mkdir(parents=True)
    (broken / "vllm" / "__init__.py").write_text(
        "raise ImportError('vllm is not usable in this environment (test)')\n"
    )
    fake_model(tmp_path)
    done = run_study(tmp_path, "tiny-qwen3-moe-cpu.yaml", f"{broken}{os.pathsep}{ROOT}")
    assert_refused_and_nothing_stored(done, tmp_path)
    assert (
        "engine vllm: `import vllm` fails in this Python environment: ImportError: vllm is not "
        "usable in this environment (test)"
    ) in done.stderr


def test_an_engine_that_is_not_installed_exits_2(tmp_path: Path) -> None:
    space = yaml.safe_load((SEARCH_SPACES_DIR / "tiny-qwen3-moe-cpu.yaml").read_text())
    space["name"] = "tiny-sglang"
    space["baseline"] = {"engine": "sglang", "variant": "bf16"}
    space["engines"] = {
        "sglang": {"version": "0.5.5", "settings": {"disable-radix-cache": {"type": "bool"}}}
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    fake_model(tmp_path)
    done = run_study(tmp_path, "space.yaml", str(ROOT))
    assert_refused_and_nothing_stored(done, tmp_path)
    assert (
        "engine sglang: Python module 'sglang' is not installed in this Python environment"
    ) in done.stderr

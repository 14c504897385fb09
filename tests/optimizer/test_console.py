"""The `serving-optimizer` command: subcommands delegate to each module's main; `--version`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest

import optimizer
from optimizer import console, version
from optimizer.console import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["study", "validate", "report", "export", "retune", "dashboard"]


def run_python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_every_subcommand_hands_the_rest_of_the_line_to_its_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, list[str]]] = []

    def fake(name: str) -> object:
        def run(argv: Sequence[str] | None) -> int:
            seen.append((name, list(argv or [])))
            return 7

        return run

    monkeypatch.setattr(console, "command_main", fake)
    for name in COMMANDS:
        assert main([name, "qwen3-moe", "--top", "2"]) == 7, "the module's status is returned"
    assert seen == [(name, ["qwen3-moe", "--top", "2"]) for name in COMMANDS]


def test_each_subcommand_is_the_main_of_its_python_m_module() -> None:
    import optimizer.dashboard
    import optimizer.export.cli
    import optimizer.report.cli
    import optimizer.retune
    import optimizer.study
    import optimizer.validate

    assert set(COMMANDS) == set(MODULES)
    assert console.command_main("study") is optimizer.study.main
    assert console.command_main("validate") is optimizer.validate.main
    assert console.command_main("report") is optimizer.report.cli.main
    assert console.command_main("export") is optimizer.export.cli.main
    assert console.command_main("retune") is optimizer.retune.main
    assert console.command_main("dashboard") is optimizer.dashboard.main


def test_version_and_help_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"serving-optimizer {version.package_version()}"
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    listing = capsys.readouterr().out
    for name in MODULES:
        assert f"\n  {name} " in listing, f"{name} is documented in --help"


@pytest.mark.parametrize("argv", [[], ["--space", "qwen3-moe.yaml"], ["optimize"]])
def test_a_missing_or_unknown_command_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "serving-optimizer: error:" in err
    if argv[:1] == ["--space"]:
        assert "serving-optimizer study --space qwen3-moe.yaml" in err, "says how to fix it"


def test_a_bad_space_exits_2_the_same_through_both_spellings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from optimizer.study import main as study_main

    assert main(["study", "--space", "no-such-space.yaml"]) == 2
    via_console = capsys.readouterr().err
    assert study_main(["--space", "no-such-space.yaml"]) == 2
    assert capsys.readouterr().err == via_console
    assert "no-such-space.yaml" in via_console
    assert not (tmp_path / "studies").exists()


def test_the_version_falls_back_to_the_checkouts_own(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert version.package_version() == optimizer.__version__


@pytest.mark.slow
def test_version_via_subprocess_on_every_entry(tmp_path: Path) -> None:
    expected = version.package_version()
    result = run_python(tmp_path, "-m", "optimizer.console", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"serving-optimizer {expected}"
    for name in MODULES:
        result = run_python(tmp_path, "-m", f"optimizer.{name}", "--version")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"python -m optimizer.{name} {expected}"


@pytest.mark.slow
def test_a_subcommand_via_subprocess_runs_its_module(tmp_path: Path) -> None:
    result = run_python(tmp_path, "-m", "optimizer.console", "report", "no-such-study")
    assert result.returncode == 2
    assert "no study database" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "studies").exists(), "a failed command writes nothing"

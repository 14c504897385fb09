"""Commands printed for copy-paste survive the shell: a storage path with a space and ';' comes
back from `shlex.split` as the same single argument, and the report names the same storage."""

from __future__ import annotations

import shlex
from pathlib import Path

from optimizer.copy_paste import study_command
from tests.conftest import StudyCli


def test_study_command_names_storage_only_when_not_default() -> None:
    assert study_command("dashboard", "a") == "python -m optimizer.dashboard a"
    assert study_command("dashboard", "a", "sqlite:///studies/a.db") == (
        "python -m optimizer.dashboard a"
    )
    line = study_command("validate", "a", "postgresql://u:pw@h/db?password=pw")
    assert shlex.split(line) == [
        "python",
        "-m",
        "optimizer.validate",
        "a",
        "--storage",
        "postgresql://u:***@h/db?password=***",
    ]


def test_browse_line_splits_back_into_the_exact_argv(
    tmp_path: Path, quick_study_cli: StudyCli
) -> None:
    url = f"sqlite:///{tmp_path / 'my studies; rm -rf x' / 'q.db'}"
    code, out, _ = quick_study_cli(url)
    assert code == 0
    browse = [line for line in out.splitlines() if line.startswith("Browse it: ")]
    assert len(browse) == 1
    argv = shlex.split(browse[0].removeprefix("Browse it: "))
    assert argv == ["python", "-m", "optimizer.dashboard", "qwen3-moe", "--storage", url]
    report = (tmp_path / "my studies; rm -rf x" / "qwen3-moe" / "report.md").read_text()
    assert shlex.quote(url) in report

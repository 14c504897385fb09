"""Names that become paths: every command refuses a hostile study name with one line, exit 2,
and writes nothing, neither under the storage folder nor in the working directory."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import yaml

from optimizer import cli, dashboard, retune, validate
from optimizer.artifacts import study_dir
from optimizer.errors import UsageError
from optimizer.export import cli as export_cli
from optimizer.paths import MAX_NAME_LENGTH, check_name, is_safe_name
from optimizer.report import cli as report_cli
from tests.conftest import SHIPPED

Main = Callable[[Sequence[str] | None], int]

HOSTILE = [
    "../../x",
    "/tmp/x",
    "a/b",
    "a\\b",
    "..",
    ".",
    ".hidden",
    "a\x00b",
    "a b",
    "caf\u00e9",
    "x" * (MAX_NAME_LENGTH + 1),
    "-rf",
]

COMMANDS: dict[str, Main] = {
    "validate": validate.main,
    "report": report_cli.main,
    "export": export_cli.main,
    "retune": retune.main,
    "dashboard": dashboard.main,
}


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*"))


@pytest.mark.parametrize("name", HOSTILE)
def test_rule_refuses_hostile_names(name: str) -> None:
    assert not is_safe_name(name)


@pytest.mark.parametrize("name", ["qwen3-moe", "a", "A.b_c-1", "x" * MAX_NAME_LENGTH])
def test_rule_accepts_plain_names(name: str) -> None:
    assert check_name(name, "--study-name") == name


@pytest.mark.parametrize("name", HOSTILE)
def test_study_command_refuses_hostile_study_name(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'db' / 'studies.db'}"
    code = cli.main(["--space", "qwen3-moe.yaml", f"--study-name={name}", "--storage", storage])
    err = capsys.readouterr().err
    assert code == 2
    assert "--study-name" in err and "cannot be used as a study name" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a\x00b"])
def test_stored_study_commands_refuse_hostile_study_name(
    command: str,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'db' / 'studies.db'}"
    code = COMMANDS[command](["qwen3-moe.yaml", f"--study-name={name}", "--storage", storage])
    err = capsys.readouterr().err
    assert code == 2
    assert "--study-name" in err and "cannot be used as a study name" in err
    assert files_under(tmp_path) == []


def test_retune_refuses_hostile_new_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'db' / 'studies.db'}"
    code = retune.main(["qwen3-moe.yaml", "--storage", storage, "--new-study", "../../evil"])
    err = capsys.readouterr().err
    assert code == 2 and "--new-study '../../evil'" in err
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "x" * (MAX_NAME_LENGTH + 1)])
def test_space_file_name_is_checked(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load(SHIPPED.read_text())
    document["name"] = name
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(document))
    monkeypatch.chdir(tmp_path)
    code = cli.main(["--space", str(space)])
    err = capsys.readouterr().err
    assert code == 2 and "name" in err and "Traceback" not in err
    assert files_under(tmp_path) == [space]


def test_study_folder_is_one_step_below_the_database_folder() -> None:
    assert study_dir("a", "sqlite:///d/a.db") == Path("d/a")
    assert study_dir("a", None) == Path("studies/a")
    with pytest.raises(UsageError, match=re.escape("study name '../../x'")):
        study_dir("../../x", "sqlite:///studies/../../x.db")

"""A SQLite storage given as a URI (``sqlite:///file:PATH?mode=ro&uri=true``): the study
command refuses a read-only one in one line, before writing anything; the reading commands use
it; and no command creates a folder named ``file:``."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from optimizer.cli import main as study_main
from optimizer.report.cli import main as report_main
from optimizer.sqlite_url import is_read_only, sqlite_file


def run(command: object, argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = command(argv)  # type: ignore[operator]
    return int(code), err.getvalue()


@pytest.mark.parametrize(
    ("url", "path", "read_only"),
    [
        ("sqlite:///studies/a.db", "studies/a.db", False),
        ("sqlite:////tmp/a.db", "/tmp/a.db", False),
        ("sqlite:///file:/tmp/a.db?mode=ro&uri=true", "/tmp/a.db", True),
        ("sqlite:///file:studies/my%20a.db?uri=true", "studies/my a.db", False),
        ("sqlite:///file:/tmp/a.db?immutable=1&uri=true", "/tmp/a.db", True),
        ("sqlite:///file:///tmp/a.db?mode=ro&uri=true", "/tmp/a.db", True),
    ],
)
def test_the_database_file_of_either_spelling(url: str, path: str, read_only: bool) -> None:
    assert sqlite_file(url) == Path(path)
    assert is_read_only(url) is read_only
    assert sqlite_file("postgresql://u@h/db") is None


def test_a_read_only_storage_is_refused_by_the_study_and_read_by_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "a.db"
    base = ["--space", "qwen3-moe.yaml", "--quiet", "--study-name", "a"]
    assert run(study_main, [*base, "--n-trials", "2", "--storage", f"sqlite:///{db}"])[0] == 0
    before = db.read_bytes()
    files = sorted(p.name for p in tmp_path.iterdir())
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"

    code, err = run(study_main, [*base, "--n-trials", "4", "--storage", read_only])
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "opens the database read-only" in errors[0], err
    assert "exceeding max length" not in err
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files, "no 'file:' folder, nothing new"

    code, err = run(report_main, ["a", "--storage", read_only])
    assert code == 0, err
    assert (tmp_path / "a" / "report.md").is_file()
    assert not (tmp_path / "file:").exists()

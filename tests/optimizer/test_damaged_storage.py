"""A damaged SQLite study is detected read-only before anything writes to it, refused with one
error (exit 2), and left byte for byte as it was."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from optimizer.cli import main

Write = Callable[[dict[str, object]], Path]


def small(shipped: dict[str, object]) -> dict[str, object]:
    space = {**shipped, "name": "d"}
    space["engines"] = {"vllm": dict(shipped["engines"])["vllm"]}  # type: ignore[call-overload]
    space["workload"] = {**dict(shipped["workload"]), "num_prompts": 200}  # type: ignore[call-overload]
    return space


def study(space: Path, db: Path, n_trials: int) -> tuple[int, str]:
    err = io.StringIO()
    argv = ["--space", str(space), "--storage", f"sqlite:///{db}", "--n-trials", str(n_trials)]
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main([*argv, "--quiet"])
    return code, err.getvalue()


def digest(folder: Path) -> dict[str, str]:
    """Every file of the database (the file and any journal beside it) by its content."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("d.db*")}


@pytest.mark.parametrize("damage", ["garbage", "pages"])
def test_a_damaged_database_is_refused_untouched(
    shipped_space: dict[str, object], write_space: Write, tmp_path: Path, damage: str
) -> None:
    space, db = write_space(small(shipped_space)), tmp_path / "d.db"
    if damage == "garbage":
        db.write_bytes(b"this is not a database\n" * 400)
    else:
        assert study(space, db, 2)[0] == 0
        data = bytearray(db.read_bytes())
        page = 4096
        for offset in range(2 * page, len(data) - page, 3 * page):  # keep the header page
            data[offset + 16 : offset + page] = b"\xa5" * (page - 16)
        db.write_bytes(bytes(data))
    before = digest(tmp_path)
    code, err = study(space, db, 3)
    assert code == 2, err
    assert "is damaged (SQLite:" in err and "nothing was written" in err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error")] == [
        line for line in err.splitlines() if "is damaged" in line
    ]
    assert digest(tmp_path) == before, "a damaged database (and its journal) is never modified"

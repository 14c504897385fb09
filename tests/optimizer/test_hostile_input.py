"""Hostile input to the driver: each a clear message, exit status 2, nothing written, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from optimizer.storage import redact
from tests.conftest import SHIPPED

ROOT = Path(__file__).resolve().parents[2]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optimizer.study", "--quiet", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://ann:s3cret@db:5432/x") == "postgresql://ann:***@db:5432/x"
    assert redact("postgresql://ann@db/x") == "postgresql://ann@db/x"
    assert redact("sqlite:///studies/a.db") == "sqlite:///studies/a.db"


def test_unreachable_postgresql_never_shows_the_password(tmp_path: Path) -> None:
    result = cli(
        tmp_path, "--space", "qwen3-moe.yaml", "--storage", "postgresql://ann:s3cret@127.0.0.1:1/x"
    )
    assert result.returncode == 2
    assert "cannot open storage 'postgresql://ann:***@127.0.0.1:1/x'" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_unknown_storage_scheme(tmp_path: Path) -> None:
    result = cli(tmp_path, "--space", "qwen3-moe.yaml", "--storage", "mongodb://x/y")
    assert result.returncode == 2 and "cannot open storage" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_sqlite_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "broken.db"
    db.write_bytes(b"this is not a database" * 100)
    before = db.read_bytes()
    result = cli(tmp_path, "--space", "qwen3-moe.yaml", "--storage", f"sqlite:///{db}")
    assert result.returncode == 2
    assert "broken.db" in result.stderr and "Traceback" not in result.stderr
    assert db.read_bytes() == before


def test_studies_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "studies").write_text("a file where the folder should be")
    result = cli(tmp_path, "--space", "qwen3-moe.yaml", "--n-trials", "2")
    assert result.returncode == 2
    assert "cannot create the studies folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_same_study_from_a_different_space_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert (
        cli(tmp_path, "--space", "qwen3-moe.yaml", "--n-trials", "2", "--storage", db).returncode
        == 0
    )
    changed = yaml.safe_load(SHIPPED.read_text())
    changed["workload"]["num_prompts"] = 500
    space = tmp_path / "changed.yaml"
    space.write_text(yaml.safe_dump(changed, sort_keys=False))
    args = ("--space", str(space), "--study-name", "qwen3-moe", "--n-trials", "3", "--storage", db)
    refused = cli(tmp_path, *args)
    assert refused.returncode == 2
    assert "created from a different space file (changed: workload)" in refused.stderr
    assert "--allow-space-change" in refused.stderr
    assert cli(tmp_path, *args, "--allow-space-change").returncode == 0

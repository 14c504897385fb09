"""A space file that is not one a person writes is refused before it is parsed: special files
(they would hang the reader), huge files, YAML nested too deep and alias bombs. Each is one
error naming the file and the fix, exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.errors import SpecError
from optimizer.spec.bounded import MAX_ALIASES, MAX_DEPTH, MAX_SPACE_BYTES
from optimizer.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]


def study_cli(space: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optimizer.study", "--space", space, "--n-trials", "1"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def refused_by_cli(space: str, cwd: Path, *expected: str) -> None:
    done = study_cli(space, cwd)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for text in expected:
        assert text in done.stderr
    assert not (cwd / "studies").exists(), "nothing may be written"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_a_device_is_refused_before_it_is_read(tmp_path: Path) -> None:
    refused_by_cli("/dev/zero", tmp_path, "/dev/zero", "not a regular file")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "space.yaml"
    os.mkfifo(fifo)
    refused_by_cli(str(fifo), tmp_path, "space.yaml", "not a regular file")


def test_a_huge_file_is_refused_by_its_size(tmp_path: Path) -> None:
    space = tmp_path / "big.yaml"
    space.write_text("".join(f"unknown_key_{i}: {i}\n" for i in range(MAX_SPACE_BYTES // 10)))
    with pytest.raises(SpecError, match=r"big\.yaml: .* bytes; a space file is at most"):
        load_spec(space)


def test_deep_nesting_is_refused_with_its_line(tmp_path: Path) -> None:
    space = tmp_path / "deep.yaml"
    space.write_text("name: x\nmodel:\n  x: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(SpecError, match=rf"deep\.yaml: line 3: nested more than {MAX_DEPTH}"):
        load_spec(space)


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 30)]
    space = tmp_path / "bomb.yaml"
    space.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match=rf"bomb\.yaml: line \d+: more than {MAX_ALIASES} YAML"):
        load_spec(space)

"""The compiled simulator loops (setup.py, `runners.sim.loop_build`): they are what an install
runs, they give bit-identical results to their sources, a stale or partial build is refused,
and the tests that patch loop classes pass on the sources."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import runners.sim.replica
from runners.errors import BuildError
from runners.sim import BUILD
from runners.sim.loop_build import (
    LOOP_MODULES,
    PURE_ENV,
    RECORD_NAME,
    build_problems,
    choose_build,
    digests,
    write_record,
)

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "runners" / "sim"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
compiled_only = pytest.mark.skipif(BUILD != "compiled", reason=f"loops not compiled ({BUILD})")


def run(argv: list[str], pure: bool, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def sources(tmp_path: Path) -> Path:
    """A copy of the loop modules' sources, with a record of them."""
    for name in LOOP_MODULES:
        (tmp_path / f"{name}.py").write_bytes((SIM / f"{name}.py").read_bytes())
    write_record(tmp_path, digests(tmp_path))
    return tmp_path


def compile_all(directory: Path) -> None:
    for name in LOOP_MODULES:
        (directory / f"{name}{SUFFIX}").write_bytes(b"")


@pytest.mark.skipif(
    os.environ.get(PURE_ENV, "") not in ("", "0"), reason=f"{PURE_ENV} asks for the sources"
)
def test_an_installed_package_runs_the_compiled_loops() -> None:
    """`pip install -e .` compiled them: a failed or skipped build is caught here, not by a
    simulator that is 1.6-2.7x slower than it should be."""
    assert BUILD == "compiled"
    assert not runners.sim.replica.__file__.endswith(".py")


@compiled_only
def test_the_compiled_loops_give_the_sources_results_bit_for_bit(tmp_path: Path) -> None:
    compiled, source = tmp_path / "compiled.npz", tmp_path / "source.npz"
    for out, pure in ((compiled, False), (source, True)):
        done = run(["scripts/fingerprint_sim.py", "--out", str(out)], pure)
        assert done.returncode == 0, done.stderr[-3000:]
    compared = run(
        ["scripts/fingerprint_sim.py", "--compare", str(source), str(compiled), "--rtol", "0"],
        pure=True,
    )
    assert compared.returncode == 0, compared.stdout[-3000:]
    assert " 0 differ" in compared.stdout


@compiled_only
def test_tests_that_patch_the_loops_pass_on_the_sources() -> None:
    """tests/conftest.py deselects `python_loops` tests when the loops are compiled; here they
    run in a subprocess that imports the sources."""
    done = run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "python_loops", "tests"],
        pure=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


def test_a_module_edited_after_the_build_is_refused_with_the_fix(tmp_path: Path) -> None:
    directory = sources(tmp_path)
    compile_all(directory)
    assert build_problems(directory) == []
    assert choose_build(directory) == "compiled"
    edited = directory / "prefix.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    with pytest.raises(BuildError) as caught:
        choose_build(directory)
    message = str(caught.value)
    assert f"{edited} changed since it was compiled" in message
    assert "pip install -e ." in message and PURE_ENV in message


@compiled_only
def test_a_command_meets_a_stale_build_with_one_error_line_and_nothing_written(
    tmp_path: Path,
) -> None:
    """As after a `git pull` that changed a loop module without reinstalling: the study command
    ends with exit 2 and one line naming the file and the fix, before anything is stored."""
    tree = tmp_path / "tree"
    skip = shutil.ignore_patterns("__pycache__")
    for package in ("optimizer", "runners"):
        shutil.copytree(ROOT / package, tree / package, symlinks=True, ignore=skip)
    for shared in ROOT.glob("runners_sim_loops__mypyc*"):  # the group's compiled library
        shutil.copy2(shared, tree / shared.name)
    edited = tree / "runners" / "sim" / "pages.py"
    edited.write_text(edited.read_text() + "\n# pulled\n")
    storage = tmp_path / "study.db"
    env = {key: value for key, value in os.environ.items() if key != PURE_ENV}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [sys.executable, "-m", "optimizer.study", "--space", "qwen3-moe.yaml",
         "--storage", f"sqlite:///{storage}"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the compiled simulator loops"), lines
    assert f"{edited} changed since it was compiled" in lines[0]
    assert "pip install -e ." in lines[0]
    assert not storage.exists() and not (tree / "studies").exists()


def test_a_partial_build_or_one_without_its_record_is_refused(tmp_path: Path) -> None:
    directory = sources(tmp_path)
    (directory / f"replica{SUFFIX}").write_bytes(b"")
    problems = build_problems(directory)
    assert len(problems) == len(LOOP_MODULES) - 1
    assert all("has no compiled module" in problem for problem in problems)
    compile_all(directory)
    (directory / RECORD_NAME).unlink()
    assert build_problems(directory) == [
        f"{directory / RECORD_NAME} is missing or unreadable, so the compiled loops are unchecked"
    ]


def test_sources_without_a_build_run_as_python(tmp_path: Path) -> None:
    assert choose_build(sources(tmp_path)) == "python (no compiled build)"


def test_the_switch_imports_the_sources_where_a_build_is() -> None:
    code = (
        "import runners.sim, runners.sim.replica as r, runners.sim.lockstep as s; "
        "print(runners.sim.BUILD, r.__file__, s.__file__, sep='|')"
    )
    done = run(["-c", code], pure=True)
    assert done.returncode == 0, done.stderr
    build, *files = done.stdout.strip().split("|")
    assert build == f"python ({PURE_ENV}=1)"
    assert files == [str(SIM / "replica.py"), str(SIM / "lockstep.py")]

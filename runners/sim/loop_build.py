"""The compiled build of the simulator's event loops: which modules, and the check on it.

Place in the data flow: `setup.py` loads this file alone (no package imports, no side effects)
for `LOOP_MODULES`, takes their `digests` when `pip install` compiles them with mypyc and
calls `write_record` once they are built;
`runners.sim.loop_guard` calls `choose_build` before any loop module is imported, so that a
compiled module never runs against sources it was not built from.

A compiled module (`<name>.cpython-*.so` next to `<name>.py`) takes precedence over its
source when Python imports it, so an edited source would otherwise be ignored without a word.
The record written at build time holds each source's SHA-256; on import the sources are hashed
again (well under a millisecond) and any difference is an error naming the file and the fix.

Three states, reported by `BUILD`:
- "compiled": every loop module is compiled and matches its source;
- "python (no compiled build)": no compiled module at all, e.g. a source checkout put on
  PYTHONPATH without `pip install`; the same code runs, 1.6-2.7x slower;
- "python (SERVING_OPTIMIZER_PURE_PYTHON=1)": the sources are imported even though a build is
  there (profilers and tests that patch a loop class need them; compiled classes cannot be
  patched).
A partial build (some modules compiled, or compiled modules without a record) is an error.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

# The modules of runners/sim that run once per simulated event. Each is mypy-strict; mypyc
# compiles them as one group (cross-module calls between them are direct C calls).
LOOP_MODULES: tuple[str, ...] = (
    "decode_scalar",
    "frontend",
    "lockstep",
    "lockstep_decode",
    "lockstep_sglang",
    "lockstep_state",
    "pages",
    "prefix",
    "replica",
    "scheduler",
    "sglang_admit",
    "sglang_decode",
    "sglang_running",
    "stretch",
)
PACKAGE = "runners.sim"
RECORD_NAME = "loop_build.json"
PURE_ENV = "SERVING_OPTIMIZER_PURE_PYTHON"
REBUILD = "run `pip install -e .` in the repository again to rebuild them"
HERE = Path(__file__).resolve().parent


def source_digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def digests(directory: Path) -> dict[str, str]:
    """The digest of every loop module's source in `directory`."""
    return {name: source_digest(directory / f"{name}.py") for name in LOOP_MODULES}


def write_record(directory: Path, record: dict[str, str]) -> Path:
    """Write `record` (the digests the build compiled) next to the compiled modules; setup.py
    does this only once they are built, so a failed build leaves the old record, which still
    describes the old compiled modules."""
    path = directory / RECORD_NAME
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def compiled_files(directory: Path, name: str) -> list[Path]:
    """The extension modules Python would import for `name` instead of its source."""
    return [
        directory / f"{name}{suffix}"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if (directory / f"{name}{suffix}").exists()
    ]


def build_problems(directory: Path) -> list[str]:
    """Why the compiled modules in `directory` must not run (empty: all compiled and current,
    or none compiled)."""
    compiled = [name for name in LOOP_MODULES if compiled_files(directory, name)]
    if not compiled:
        return []
    missing = sorted(set(LOOP_MODULES) - set(compiled))
    if missing:
        return [f"{directory / (name + '.py')} has no compiled module" for name in missing]
    record_path = directory / RECORD_NAME
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return [f"{record_path} is missing or unreadable, so the compiled loops are unchecked"]
    return [
        f"{directory / (name + '.py')} changed since it was compiled"
        for name in LOOP_MODULES
        if record.get(name) != source_digest(directory / f"{name}.py")
    ]


class SourceFinder(importlib.abc.MetaPathFinder):
    """Imports the loop modules from their sources even where compiled ones exist."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE or name not in LOOP_MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, self.directory / f"{name}.py")


def choose_build(directory: Path = HERE) -> str:
    """Check the build and pick what the loop modules are imported from; returns `BUILD`.

    Raises BuildError when compiled modules exist that do not match their sources.
    """
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        if not any(isinstance(finder, SourceFinder) for finder in sys.meta_path):
            sys.meta_path.insert(0, SourceFinder(directory))
        return f"python ({PURE_ENV}=1)"
    problems = build_problems(directory)
    if problems:
        from runners.errors import BuildError

        raise BuildError(
            "the compiled simulator loops do not match their sources: "
            + "; ".join(problems)
            + f". Fix: {REBUILD}, or set {PURE_ENV}=1 to run the sources as they are."
        )
    return (
        "compiled" if compiled_files(directory, LOOP_MODULES[0]) else "python (no compiled build)"
    )

"""Build hook: compile the simulator's event loops with mypyc when the package is installed.

`pip install -e .` (and `pip install .`) run this. The modules to compile and the record of
their source digests come from runners/sim/loop_build.py; the record is written only after the
modules are built, and `runners.sim` refuses, at import, a compiled module that no longer
matches its source. Needs a C compiler and the Python headers.
All other metadata is in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from mypyc.build import mypycify
from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SIM = HERE / "runners" / "sim"


def _loop_build() -> ModuleType:
    """runners/sim/loop_build.py, loaded alone (the package's imports are not needed)."""
    spec = importlib.util.spec_from_file_location("_loop_build", SIM / "loop_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loops = _loop_build()
compiled_digests = loops.digests(SIM)  # the sources mypycify reads, just below


class BuildLoops(build_ext):
    """setuptools' build_ext, then the record of what it compiled, beside the compiled modules
    (the source tree for an editable install, the build folder for a wheel)."""

    def run(self) -> None:
        super().run()
        first = f"{loops.PACKAGE}.{loops.LOOP_MODULES[0]}"
        loops.write_record(Path(self.get_ext_fullpath(first)).parent, compiled_digests)


setup(
    ext_modules=mypycify(
        [f"runners/sim/{name}.py" for name in loops.LOOP_MODULES],
        group_name="runners_sim_loops",
    ),
    cmdclass={"build_ext": BuildLoops},
)

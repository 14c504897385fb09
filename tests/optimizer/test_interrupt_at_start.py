"""Ctrl-C at any moment of a command's start-up (while it imports Optuna, SQLAlchemy, ...) ends
it with exit 130 and no traceback, for every entry point.

Each command runs as a real subprocess with Python's import timing on (PYTHONPROFILEIMPORTTIME),
which prints a line on stderr as each module finishes importing; SIGINT is sent the moment the
named module's line appears, so the interrupt lands in the middle of the imports that follow.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ENTRIES = {
    "study": [sys.executable, "-m", "optimizer.study", "--space", "qwen3-moe.yaml"],
    "console": ["serving-optimizer", "study", "--space", "qwen3-moe.yaml"],
    "report": [sys.executable, "-m", "optimizer.report", "qwen3-moe"],
    "validate": [sys.executable, "-m", "optimizer.validate", "qwen3-moe"],
    "export": [sys.executable, "-m", "optimizer.export", "qwen3-moe"],
    "dashboard": [sys.executable, "-m", "optimizer.dashboard", "qwen3-moe"],
}
# just after the package itself; inside Optuna's import (SQLAlchemy); after Optuna
MOMENTS = ["optimizer", "sqlalchemy", "optuna"]


def interrupt_when_imported(argv: list[str], module: str, cwd: Path) -> tuple[int, str]:
    """Run `argv`, send SIGINT once `module` has been imported; exit status and stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPROFILEIMPORTTIME": "1"}
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == module:
            process.send_signal(signal.SIGINT)
            break
    else:
        process.wait(timeout=120)
        pytest.fail(f"{module} was never imported: {''.join(seen[-5:])}")
    _, rest = process.communicate(timeout=120)
    return process.returncode, "".join(seen) + rest


CASES = [
    pytest.param(entry, moment, marks=[] if entry == "study" else [pytest.mark.slow])
    for entry in ENTRIES
    for moment in MOMENTS
]


@pytest.mark.parametrize(("entry", "moment"), CASES)
def test_ctrl_c_during_start_up_exits_130_without_traceback(
    entry: str, moment: str, tmp_path: Path
) -> None:
    argv = list(ENTRIES[entry])
    if argv[0] == "serving-optimizer":
        found = shutil.which("serving-optimizer")
        if found is None:
            pytest.skip("the serving-optimizer script is not installed")
        argv[0] = found
    code, err = interrupt_when_imported(argv, moment, tmp_path)
    assert "Traceback" not in err
    assert code == 130, err[-2000:]
    assert err.rstrip().endswith("interrupted")
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_a_program_importing_the_package_keeps_its_own_ctrl_c() -> None:
    from optimizer.quiet_interrupt import is_command_process

    python = sys.executable
    assert is_command_process([python, "-m", "optimizer.study", "--space", "x"], ["-m"])
    assert is_command_process([python, "-moptimizer.report", "s"], ["-m"])
    assert is_command_process([python, "/bin/serving-optimizer"], ["/bin/serving-optimizer"])
    assert not is_command_process([python, "-m", "pytest", "-q"], ["-m"])
    assert not is_command_process([python, "my_script.py"], ["my_script.py"])
    assert not is_command_process([python, "-c", "import optimizer"], ["-c"])
    assert not is_command_process([python, "-m", "optimizerx.tool"], ["-m"])


def test_ctrl_c_while_the_interpreter_shuts_down_is_quiet_too(tmp_path: Path) -> None:
    """An exit callback interrupted by Ctrl-C: Python would print "Exception ignored in atexit
    callback" and a traceback, and exit 0 as if nothing happened."""
    code = (
        "import atexit\n"
        "from optimizer.quiet_interrupt import install\n"
        "install()\n"
        "def closing():\n"
        "    raise KeyboardInterrupt\n"
        "atexit.register(closing)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "Traceback" not in done.stderr
    assert done.returncode == 130, done.stderr

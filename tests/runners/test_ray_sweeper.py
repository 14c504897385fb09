"""The per-actor sweeper as a program: started the way `TrialWorker` starts it, without Ray.

An "actor" process tags its environment and starts the sweeper; a tagged "engine" in its own
session (as engines start) must die once the actor is killed, an untagged process must not,
and the sweeper must run with nothing but the standard library (``python -I -S``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runners.ray import sweeper
from runners.ray.worker import TRIAL_TAG_ENV

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
ACTOR = """
import os, subprocess, sys
from runners.ray.worker import start_sweeper
tag = start_sweeper()
engine = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
)
print(tag, engine.pid, flush=True)
import time; time.sleep(600)
"""


def gone(pid: int, within_s: float = 20.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if sweeper.start_time(pid) is None:
            return True
        time.sleep(0.1)
    return False


def test_the_sweeper_kills_tagged_processes_once_their_actor_is_gone() -> None:
    bystander = subprocess.Popen(SLEEPER, start_new_session=True)
    actor = subprocess.Popen(
        [sys.executable, "-c", ACTOR],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(sweeper.__file__).parents[2])},
    )
    engine, engine_born = 0, None
    try:
        assert actor.stdout is not None
        tag, engine_pid = actor.stdout.readline().split()
        engine = int(engine_pid)
        engine_born = sweeper.start_time(engine)
        # the actor tagged itself after it started (/proc shows its initial environment);
        # what it starts afterwards inherits the tag
        assert sweeper.tagged_pids(TRIAL_TAG_ENV, tag) == [engine]
        time.sleep(1.0)
        assert sweeper.start_time(engine) is not None, "alive while its actor lives"
        actor.send_signal(signal.SIGKILL)
        actor.wait()
        assert gone(engine), "the tagged engine outlived its actor"
        assert sweeper.start_time(bystander.pid) is not None, "an untagged process was killed"
    finally:
        for proc in (actor, bystander):
            proc.kill()
            proc.wait()
        if engine_born is not None and sweeper.start_time(engine) == engine_born:
            os.kill(engine, signal.SIGKILL)  # the sweeper failed: do not leave it behind


def test_the_sweeper_needs_only_the_standard_library() -> None:
    """-I -S: no site, no PYTHONPATH; a wrong call is a usage error, not an ImportError."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", sweeper.__file__],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "usage: sweeper.py TAG PID START_TIME ENV_NAME" in done.stderr


def test_start_time_tells_a_live_process_from_an_exited_one() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    born = sweeper.start_time(os.getpid())
    assert born is not None and born == sweeper.start_time(os.getpid())
    proc.wait()
    assert sweeper.start_time(proc.pid) is None

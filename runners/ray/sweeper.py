"""The per-actor process sweeper: once a trial's actor process is gone, kill what it started.

Where it sits: `runners.ray.worker.TrialWorker` starts it when its actor starts, as a separate
program (``python -I -S <this file> TAG PID START_TIME ENV_NAME``; it needs only the standard
library, so it skips site and the user's environment and starts in a few tens of milliseconds).
The actor tags its own environment with ``ENV_NAME=TAG``, so every process it starts from then
on (the engine and the engine's own workers) inherits the tag, also those that start their own
session and so escape Ray's child-process cleanup. The sweeper detaches (forks, the parent
exits at once, the child starts its own session), waits until process PID with that start time
is gone (killed, crashed, or its node's raylet stopped it), then SIGKILLs every process whose
environment carries the tag. Linux only: it reads /proc.
"""

from __future__ import annotations

import os
import signal
import sys
import time

POLL_S = 0.5


def start_time(pid: int) -> str | None:
    """Process `pid`'s start time (clock ticks after boot, /proc field 22), None once it has
    exited (also as a zombie); with the pid it identifies one process, as pids are reused."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZX" else fields[19]


def tagged_pids(env_name: str, tag: str) -> list[int]:
    """Processes whose environment holds ``env_name=tag`` (those this user may read)."""
    needle = f"{env_name}={tag}".encode()
    found: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as environ:
                if needle in environ.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def sweep(env_name: str, tag: str) -> list[int]:
    """SIGKILL every process carrying the tag (except this one); return their pids."""
    killed: list[int] = []
    for pid in tagged_pids(env_name, tag):
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
        killed.append(pid)
    return killed


def watch(pid: int, born: str, env_name: str, tag: str, poll_s: float = POLL_S) -> list[int]:
    """Wait until process `pid` started at `born` is gone, then sweep its tag."""
    while start_time(pid) == born:
        time.sleep(poll_s)
    return sweep(env_name, tag)


def main(argv: list[str]) -> int:
    """``TAG PID START_TIME ENV_NAME``: detach, watch, sweep. The caller's exit status is 0
    as soon as the watcher runs in its own session."""
    if len(argv) != 4:
        print("usage: sweeper.py TAG PID START_TIME ENV_NAME", file=sys.stderr)
        return 2
    tag, pid, born, env_name = argv[0], int(argv[1]), argv[2], argv[3]
    if os.fork():
        return 0
    os.setsid()
    watch(pid, born, env_name, tag)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

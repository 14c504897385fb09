"""Engine process lifecycle: port lease, start in its own process group, readiness, teardown.

Under `runners.launch` (the first stage of a real trial): an engine adapter renders a
`LaunchSpec`; this module writes its files and ``launch.json`` (the exact argv and the
environment it added), starts its argv (no shell) as the leader of a new session and process
group with stdout and stderr captured to a log file, and waits until the health URL answers 200
while the process is still alive, polling with backoff. A process that exits during start is
reported at once (`StartExited`, exit code and log), never after the deadline. `stop` sends
SIGTERM to the whole group, SIGKILL after a grace period, waits until no live process of the
group is left, and verifies that the port can be bound again. Nothing is ever killed by name:
only the process group this module created. `PortLease` picks ports below the kernel's ephemeral
range and holds a lock file per port, so concurrent trials (threads or processes) never get the
same port.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from runners.errors import ProcessError
from runners.types import LaunchSpec

PORT_RANGE = (20000, 29999)
"""Below Linux's default ephemeral range (32768-60999), so outgoing sockets never take them."""
LOCK_DIR = Path(tempfile.gettempdir()) / "serving-optimizer-ports"


@dataclass(frozen=True)
class StartReady:
    """The health URL answered 200 while the process was alive."""

    startup_s: float


@dataclass(frozen=True)
class StartExited:
    """The process exited before it became ready."""

    exit_code: int
    startup_s: float


@dataclass(frozen=True)
class StartTimeout:
    """The deadline passed with the process alive but not ready."""

    startup_s: float


StartResult = StartReady | StartExited | StartTimeout


def port_is_free(host: str, port: int) -> bool:
    """True when a listening socket could bind `host`:`port` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortLease:
    """An exclusive claim on one TCP port, held through a lock file until `release`.

    Two leases (in any thread or process of this machine) never hold the same port, and a
    leased port was free when it was handed out.
    """

    def __init__(self, host: str = "127.0.0.1", lock_dir: Path = LOCK_DIR) -> None:
        self.host = host
        lock_dir.mkdir(parents=True, exist_ok=True)
        start = PORT_RANGE[0] + (os.getpid() * 7919 + time.monotonic_ns()) % (
            PORT_RANGE[1] - PORT_RANGE[0]
        )
        span = PORT_RANGE[1] - PORT_RANGE[0]
        for step in range(span):
            port = PORT_RANGE[0] + (start - PORT_RANGE[0] + step) % span
            handle = open(lock_dir / f"{port}.lock", "w")  # noqa: SIM115 - held until release
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            if port_is_free(host, port):
                self.port = port
                self._handle: IO[str] | None = handle
                return
            handle.close()
        raise ProcessError(f"no free port in {PORT_RANGE[0]}-{PORT_RANGE[1]} on {host}")

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> PortLease:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`, read from /proc."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # fields after the command name (which may contain spaces) start after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


class EngineProcess:
    """One engine instance started from a `LaunchSpec`; use as a context manager.

    Not thread-safe: one trial owns one instance. `__exit__` always stops the process group.
    """

    def __init__(
        self,
        spec: LaunchSpec,
        workdir: Path,
        log_path: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.workdir = workdir
        self.log_path = log_path
        self.extra_env = dict(extra_env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_s = 0.0

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ProcessError("the engine process was not started")
        return self._proc.pid

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for relative, content in self.spec.files:
            target = self.workdir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        env = {**os.environ, **self.extra_env, **dict(self.spec.env)}
        launch = {
            "argv": list(self.spec.argv),
            "env": {**self.extra_env, **dict(self.spec.env)},
            "host": self.spec.host,
            "port": self.spec.port,
        }
        (self.workdir / "launch.json").write_text(json.dumps(launch, indent=1))
        with open(self.log_path, "wb") as log:
            try:
                self._proc = subprocess.Popen(
                    list(self.spec.argv),
                    cwd=self.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessError(f"cannot start {self.spec.argv[0]!r}: {exc}") from exc
        self._started_s = time.perf_counter()

    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def wait_ready(
        self, deadline_s: float, first_poll_s: float = 0.05, max_poll_s: float = 1.0
    ) -> StartResult:
        """Poll the health URL with backoff until 200 (alive), exit, or `deadline_s`."""
        delay = first_poll_s
        with httpx.Client(timeout=httpx.Timeout(5.0, connect=1.0), trust_env=False) as client:
            while True:
                elapsed = time.perf_counter() - self._started_s
                code = self.exit_code()
                if code is not None:
                    return StartExited(code, elapsed)
                if elapsed > deadline_s:
                    return StartTimeout(elapsed)
                try:
                    status = client.get(self.spec.health_url).status_code
                except httpx.HTTPError:
                    status = 0
                if status == 200 and self.exit_code() is None:
                    return StartReady(time.perf_counter() - self._started_s)
                time.sleep(min(delay, max(0.0, deadline_s - elapsed) + 0.01))
                delay = min(max_poll_s, delay * 1.5)

    def log_text(self, max_bytes: int = 1 << 20) -> str:
        """The last `max_bytes` of the captured log."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - max_bytes))
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, grace_s: float = 10.0, port_wait_s: float = 10.0) -> int | None:
        """SIGTERM the group, SIGKILL what is left after `grace_s`; return the exit code.

        Raises `ProcessError` if a process of the group survives SIGKILL or the port stays
        bound after `port_wait_s`.
        """
        proc = self._proc
        if proc is None:
            return None
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        self._signal_group(pgid, signal.SIGTERM)
        deadline = time.perf_counter() + grace_s
        while time.perf_counter() < deadline and (proc.poll() is None or group_pids(pgid)):
            time.sleep(0.05)
        if proc.poll() is None or group_pids(pgid):
            self._signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)
        deadline = time.perf_counter() + 5.0
        while group_pids(pgid) and time.perf_counter() < deadline:
            time.sleep(0.05)
        left = group_pids(pgid)
        if left:
            raise ProcessError(f"processes {left} of group {pgid} survived SIGKILL")
        deadline = time.perf_counter() + port_wait_s
        while not port_is_free(self.spec.host, self.spec.port):
            if time.perf_counter() > deadline:
                raise ProcessError(f"port {self.spec.port} is still bound after teardown")
            time.sleep(0.1)
        return proc.returncode

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def __enter__(self) -> EngineProcess:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def leased_port(host: str = "127.0.0.1") -> Iterator[int]:
    with PortLease(host) as lease:
        yield lease.port

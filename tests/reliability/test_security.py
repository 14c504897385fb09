"""Security: a storage password never shows, and every server the tool starts binds loopback.

A study on the suite's PostgreSQL server is opened with a password in its URL (the server
trusts loopback, so any password works): the driver's output, a warm-start error, the report
and every file written, the validation and dashboard commands, the trial notes and attributes
in the storage, and the exceptions of `open_storage` must never contain it. The emulator and
the dashboard are started for real and their listening sockets read from /proc/net/tcp.
No `shell=True` / `os.system`: tests/test_layering.py::test_no_shell_anywhere walks the AST.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import optuna
import pytest

from optimizer.storage import open_storage
from runners.errors import ServingOptimizerError
from runners.sim.serve import parse_options

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cretPW"


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env(), capture_output=True, text=True, timeout=600
    )


def with_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    user, _, host = rest.partition("@")
    return f"{scheme}://{user}:{SECRET}@{host}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on `port` (IPv4 and IPv6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as listed


def wait_listening(process: subprocess.Popen[str], port: int) -> set[str]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        found = listening_addresses(port)
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}; exit code {process.poll()}")


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM then SIGKILL the process group we started; its output."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=20)
    return out + err


def test_no_password_anywhere(tmp_path: Path, postgres_server: str) -> None:
    url = with_password(postgres_server)
    seen: list[str] = []

    study = run(tmp_path, "-m", "optimizer.study", "--space", "qwen3-moe.yaml", "--n-trials", "4",
                "--storage", url, "--study-name", "sec")  # fmt: skip
    assert study.returncode == 0, study.stderr
    assert "***" in study.stdout  # the storage is named, redacted
    seen += [study.stdout, study.stderr]

    warm = run(tmp_path, "-m", "optimizer.study", "--space", "qwen3-moe.yaml", "--n-trials", "5",
               "--storage", url, "--study-name", "sec", "--warm-start", f"{url}#nope")  # fmt: skip
    assert warm.returncode != 0
    assert "nope" in warm.stderr
    seen += [warm.stdout, warm.stderr]

    report = run(tmp_path, "-m", "optimizer.report", "sec", "--storage", url)
    assert report.returncode == 0, report.stderr
    seen += [report.stdout, report.stderr]

    missing = run(tmp_path, "-m", "optimizer.validate", "nope", "--storage", url)
    assert missing.returncode == 2 and "no study named 'nope'" in missing.stderr
    seen += [missing.stdout, missing.stderr]

    port = free_port()
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "optimizer.dashboard", "sec", "--storage", url,
         "--port", str(port)],
        cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_listening(dashboard, port) <= LOOPBACK, "the dashboard binds loopback only"
    finally:
        seen.append(stop(dashboard))

    for output in seen:
        assert SECRET not in output
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "report.md" for path in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path

    # trial notes (study system attributes) and every trial attribute in the storage
    stored = optuna.load_study(study_name="sec", storage=postgres_server)
    notes = stored._storage.get_study_system_attrs(stored._study_id)
    blobs = [json.dumps([notes, stored.user_attrs], default=str)]
    for trial in stored.trials:
        blobs.append(json.dumps([trial.user_attrs, trial.system_attrs], default=str))
    assert any("serve" in blob for blob in blobs)
    assert not [blob for blob in blobs if SECRET in blob]


def test_storage_exceptions_never_carry_the_password() -> None:
    with pytest.raises(ServingOptimizerError) as raised:
        open_storage(f"postgresql://ann:{SECRET}@127.0.0.1:1/x")
    text = "".join(traceback.format_exception(raised.value))
    assert SECRET not in text
    assert "ann:***@127.0.0.1:1/x" in str(raised.value)


def test_the_emulator_binds_loopback_by_default(tmp_path: Path) -> None:
    assert parse_options(["--", "vllm", "serve", "Qwen/Qwen3-30B-A3B"]).host == "127.0.0.1"
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "runners.sim.serve", "--startup-s", "0", "--",
         "vllm", "serve", "Qwen/Qwen3-30B-A3B", "--port", str(port)],
        cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_listening(emulator, port) <= LOOPBACK
    finally:
        stop(emulator)


def test_engines_are_launched_on_loopback() -> None:
    """What LocalRunner starts (real engine or emulator) is told to bind 127.0.0.1."""
    from runners.engines import get_engine, launch_spec
    from runners.types import Candidate, NodeGroup, Placement

    placement = Placement(NodeGroup("h100", "H100-SXM-80GB", 8), tuple(range(8)))
    for engine in ("vllm", "sglang"):
        version = str(get_engine(engine, None).version)
        candidate = Candidate.make(
            engine, version, "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", {}
        )
        spec = launch_spec(candidate, placement, 8123)
        assert spec.host == "127.0.0.1"
        argv = list(spec.argv)
        assert argv[argv.index("--host") + 1] == "127.0.0.1"

"""Engine process lifecycle with plain Python children: ports, exits, process-group teardown."""

from __future__ import annotations

import sys
from pathlib import Path

from runners.process import EngineProcess, PortLease, StartExited, group_pids, port_is_free
from runners.types import LaunchSpec


def test_concurrent_leases_never_share_a_port() -> None:
    leases = [PortLease() for _ in range(20)]
    try:
        ports = {lease.port for lease in leases}
        assert len(ports) == 20
    finally:
        for lease in leases:
            lease.release()


def test_exit_during_start_is_reported_at_once(tmp_path: Path) -> None:
    with PortLease() as lease:
        code = "import sys; print('ValueError: bad'); sys.exit(3)"
        spec = LaunchSpec(argv=(sys.executable, "-c", code), port=lease.port)
        engine = EngineProcess(spec, tmp_path, tmp_path / "log")
        with engine:
            result = engine.wait_ready(deadline_s=120.0)
        assert isinstance(result, StartExited)
        assert result.exit_code == 3
        assert result.startup_s < 120.0
        assert "ValueError: bad" in engine.log_text()


def test_stop_kills_the_whole_group_even_if_it_ignores_sigterm(tmp_path: Path) -> None:
    child = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    )
    with PortLease() as lease:
        spec = LaunchSpec(argv=(sys.executable, "-c", child), port=lease.port)
        engine = EngineProcess(spec, tmp_path, tmp_path / "log")
        engine.start()
        pgid = engine.pid
        for _ in range(100):
            if len(group_pids(pgid)) == 2:
                break
            import time

            time.sleep(0.05)
        assert len(group_pids(pgid)) == 2
        engine.stop(grace_s=0.5)
        assert group_pids(pgid) == []
        assert port_is_free(spec.host, spec.port)

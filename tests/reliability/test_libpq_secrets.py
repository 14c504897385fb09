"""A PostgreSQL password that is not in the storage URL (PGPASSWORD, a libpq service file, a
password file) appears in no output: not on the terminal, not in a file under studies/, not in
the trial notes the dashboard shows, not in an exception.

The suite's server trusts loopback, so a role `keeper` is made with a password and the
server's pg_hba.conf is told to demand it (scram-sha-256) for that role; a connection without
the password is checked to fail first, so the runs below really use the secret. Each way of
supplying it then runs the study and the commands that read it, and every output is scanned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
from sqlalchemy.engine import make_url

from optimizer.redaction import scrub, secrets_in
from optimizer.storage import open_storage
from runners.errors import ServingOptimizerError
from tests.reliability.test_security import (
    LOOPBACK,
    ROOT,
    free_port,
    stop,
    wait_listening,
)

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.slow]

SECRET = "Kp9wLibpqOnly"


def psycopg_dsn(url: str) -> str:
    parsed = make_url(url)
    return f"host={parsed.host} port={parsed.port} user={parsed.username} dbname={parsed.database}"


@pytest.fixture(scope="module")
def keeper(postgres_server: str) -> Iterator[tuple[str, int]]:
    """(host, port) of the server, where role `keeper` must give SECRET to reach db `keeper`."""
    parsed = make_url(postgres_server)
    with psycopg.connect(psycopg_dsn(postgres_server), autocommit=True) as admin:
        hba = Path(str(admin.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        if not os.access(hba, os.W_OK):
            pytest.skip("the server's pg_hba.conf is not writable here")
        admin.execute(f"CREATE ROLE keeper LOGIN PASSWORD '{SECRET}'")
        admin.execute("CREATE DATABASE keeper OWNER keeper")
        original = hba.read_text()
        hba.write_text(f"host all keeper 127.0.0.1/32 scram-sha-256\n{original}")
        admin.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    host, port = str(parsed.host), int(parsed.port or 5432)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host={host} port={port} user=keeper dbname=keeper", connect_timeout=5)
    try:
        yield host, port
    finally:
        hba.write_text(original)
        with psycopg.connect(psycopg_dsn(postgres_server), autocommit=True) as admin:
            admin.execute("SELECT pg_reload_conf()")


def run(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return {**env, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home")}


def supplied(way: str, tmp_path: Path, host: str, port: int) -> tuple[str, dict[str, str]]:
    """The storage URL and environment of one way of giving the password outside the URL."""
    env = clean_env(tmp_path)
    (tmp_path / "home").mkdir()
    base = f"postgresql://keeper@{host}:{port}/keeper"
    if way == "PGPASSWORD":
        return base, {**env, "PGPASSWORD": SECRET}
    if way == "service file":
        services = tmp_path / "conf" / "services.conf"
        services.parent.mkdir()
        services.write_text(
            f"[tuning]\nhost={host}\nport={port}\nuser=keeper\ndbname=keeper\npassword={SECRET}\n"
        )
        return "postgresql:///?service=tuning", {**env, "PGSERVICEFILE": str(services)}
    passfile = tmp_path / "home" / ".pgpass"
    passfile.write_text(f"{host}:{port}:keeper:keeper:{SECRET}\n")
    passfile.chmod(0o600)
    return base, env


WAYS = ["PGPASSWORD", "service file", "password file"]


@pytest.mark.parametrize("way", WAYS)
def test_a_password_from_outside_the_url_appears_in_no_output(
    way: str, keeper: tuple[str, int], tmp_path: Path
) -> None:
    url, env = supplied(way, tmp_path, *keeper)
    name = "keep_" + way.replace(" ", "_").lower()
    work = tmp_path / "work"
    work.mkdir()
    seen: list[str] = []

    def command(*argv: str) -> subprocess.CompletedProcess[str]:
        done = run(work, env, *argv)
        seen.extend([done.stdout, done.stderr])
        assert "Traceback" not in done.stderr, done.stderr
        return done

    study = command("-m", "optimizer.study", "--space", "qwen3-moe.yaml", "--n-trials", "3",
                    "--storage", url, "--study-name", name)  # fmt: skip
    assert study.returncode == 0, study.stderr
    assert command("-m", "optimizer.report", name, "--storage", url).returncode == 0
    assert command("-m", "optimizer.export", name, "--storage", url).returncode == 0
    missing = command("-m", "optimizer.validate", "nope", "--storage", url)
    assert missing.returncode == 2 and "no study named 'nope'" in missing.stderr
    port = free_port()
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "optimizer.dashboard", name, "--storage", url, "--port", str(port)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_listening(dashboard, port) <= LOOPBACK
        for path in ("/api/studies", "/api/studies/1?after=0"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as reply:
                seen.append(reply.read().decode(errors="replace"))
    finally:
        seen.append(stop(dashboard))

    for output in seen:
        assert SECRET not in output
    written = [path for path in work.rglob("*") if path.is_file()]
    assert any(path.name == "report.md" for path in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path

    host, port_ = keeper
    direct = f"postgresql://keeper:{SECRET}@{host}:{port_}/keeper"
    stored = optuna.load_study(study_name=name, storage=direct)
    notes = stored._storage.get_study_system_attrs(stored._study_id)
    blobs = [json.dumps([notes, stored.user_attrs], default=str)]
    blobs += [json.dumps([t.user_attrs, t.system_attrs], default=str) for t in stored.trials]
    assert any("serve" in blob for blob in blobs)
    assert not [blob for blob in blobs if SECRET in blob]


def test_a_failing_server_with_an_outside_password_never_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens: the driver's error passes through the scrubber with the secret known."""
    services = tmp_path / "services.conf"
    services.write_text(f"[gone]\nhost=127.0.0.1\nport=1\nuser=ann\npassword={SECRET}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.setenv("PGPASSWORD", SECRET + "env")
    url = "postgresql:///?service=gone&connect_timeout=2"
    with pytest.raises(ServingOptimizerError) as raised:
        open_storage(url)
    text = "".join(traceback.format_exception(raised.value))
    assert "cannot open storage" in text
    assert SECRET not in text
    assert {SECRET, SECRET + "env"} <= secrets_in(url)
    assert scrub(f"dsn password={SECRET}env failed", url) == "dsn password=*** failed"

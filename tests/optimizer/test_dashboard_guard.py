"""The dashboard guard over real HTTP: optuna-dashboard's app on a SQLite study, served by
`guarded_server` in a thread on a free port, and `optimizer.dashboard`'s flags."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
from optuna_dashboard import wsgi

from optimizer.dashboard import main
from optimizer.dashboard_guard import (
    Guard,
    GuardPolicy,
    allowed_hosts,
    guarded_server,
    is_loopback,
)
from tests.optimizer.report_study import study_in

TOKEN = "t0ken-for-tests"


def make_study(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    study = optuna.create_study(study_name="g", storage=url)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    return url


@contextmanager
def serve(url: str, **policy: Any) -> Iterator[str]:
    """The guarded app on a free loopback port (the Host rule learns the port once bound)."""
    server = guarded_server(wsgi(url), "127.0.0.1", 0, GuardPolicy(hosts=frozenset(), **policy))
    guard = server.get_app()
    assert isinstance(guard, Guard)
    guard.policy = GuardPolicy(hosts=allowed_hosts("127.0.0.1", server.server_port), **policy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[str, str]]:
    url = make_study(tmp_path)
    with serve(url) as base:
        yield url, base


def study_attrs(url: str) -> str:
    """The study's system attributes as text (optuna-dashboard keeps the study note there)."""
    study = optuna.load_study(study_name="g", storage=url)
    return str(study._storage.get_study_system_attrs(study._study_id))


def study_id(base: str, **kw: Any) -> int:
    response = httpx.get(f"{base}/api/studies", trust_env=False, **kw)
    assert response.status_code == 200
    studies = response.json()["study_summaries"]
    assert [s["study_name"] for s in studies] == ["g"]
    return int(studies[0]["study_id"])


def test_every_mutating_route_is_refused_and_nothing_changes(read_only: tuple[str, str]) -> None:
    url, base = read_only
    sid = study_id(base)
    trial_id = optuna.load_study(study_name="g", storage=url).trials[0]._trial_id
    client = httpx.Client(base_url=base, trust_env=False)
    attempts = [
        client.delete(f"/api/studies/{sid}"),
        client.put(f"/api/studies/{sid}/note", json={"version": 1, "body": "pwned"}),
        client.post("/api/studies", json={"study_name": "new", "directions": ["minimize"]}),
        client.post(f"/api/studies/{sid}/rename", json={"study_name": "renamed"}),
        client.post(f"/api/trials/{trial_id}/tell", json={"state": "Fail"}),
        client.post(f"/api/trials/{trial_id}/user-attrs", json={"user_attrs": {"a": 1}}),
        client.patch(f"/api/studies/{sid}"),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert "read-only" in attempts[0].json()["reason"]
    study = optuna.load_study(study_name="g", storage=url)
    assert len(study.trials) == 2
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert study.trials[0].user_attrs == {}
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["g"]
    assert "pwned" not in study_attrs(url)
    assert client.get(f"/api/studies/{sid}").status_code == 200
    assert client.head("/").status_code in (200, 302)


def test_a_foreign_host_header_gets_421(read_only: tuple[str, str]) -> None:
    _, base = read_only
    port = base.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1", ""):
        response = httpx.get(f"{base}/api/studies", headers={"Host": host}, trust_env=False)
        assert response.status_code == 421, host
    ok = httpx.get(f"{base}/api/studies", headers={"Host": f"localhost:{port}"}, trust_env=False)
    assert ok.status_code == 200


def test_allow_writes_lets_a_note_be_saved(tmp_path: Path) -> None:
    url = make_study(tmp_path)
    with serve(url, allow_writes=True) as base:
        sid = study_id(base)
        response = httpx.put(
            f"{base}/api/studies/{sid}/note",
            json={"version": 1, "body": "kept"},
            trust_env=False,
        )
        assert response.status_code == 204
    assert "kept" in study_attrs(url)


def test_a_token_is_needed_by_header_query_or_cookie(tmp_path: Path) -> None:
    url = make_study(tmp_path)
    with serve(url, token=TOKEN) as base:
        assert httpx.get(f"{base}/api/studies", trust_env=False).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{base}/api/studies", headers=wrong, trust_env=False).status_code == 401
        study_id(base, headers={"Authorization": f"Bearer {TOKEN}"})
        with httpx.Client(base_url=base, trust_env=False) as browser:
            first = browser.get("/api/studies", params={"token": TOKEN})
            assert first.status_code == 200
            assert browser.get("/api/studies").status_code == 200  # the cookie carries it
            assert browser.delete("/api/studies/1").status_code == 403  # still read-only


def test_loopback_and_allowed_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    assert allowed_hosts("127.0.0.1", 8080) == {"127.0.0.1:8080", "localhost:8080"}
    assert allowed_hosts("10.1.2.3", 80, ["box"]) == {"10.1.2.3:80", "box:80", "10.1.2.3", "box"}
    assert "localhost:9" in allowed_hosts("0.0.0.0", 9)  # every interface includes loopback


def test_a_non_loopback_host_needs_expose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_study(tmp_path)
    status = main(["g", "--storage", url, "--host", "0.0.0.0"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "--expose" in err and "Traceback" not in err
    status = main(["g", "--storage", url, "--token", "short"])
    assert status == 2 and "--token" in capsys.readouterr().err


class Stopped:
    """Stands in for the bound server: the test never listens beyond loopback."""

    def serve_forever(self) -> None:
        raise KeyboardInterrupt

    def server_close(self) -> None:
        pass


def test_expose_warns_and_names_the_hosts_it_answers(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study, _ = study_in(tmp_path_factory, "expose", n_trials=3)
    url = study._storage._backend.url  # type: ignore[attr-defined]
    policies: list[GuardPolicy] = []

    def bind(ref: object, host: str, port: int, policy: GuardPolicy) -> Stopped:
        policies.append(policy)
        return Stopped()

    monkeypatch.setattr("optimizer.dashboard.bind", bind)
    monkeypatch.setenv("SERVING_OPTIMIZER_DASHBOARD_TOKEN", TOKEN)
    argv = [study.study_name, "--storage", url, "--host", "0.0.0.0", "--port", "9", "--expose"]
    assert main([*argv, "--allow-host", "box.lan"]) == 0
    err = capsys.readouterr().err
    assert "warning: the dashboard listens on 0.0.0.0" in err and "box.lan:9" in err
    assert "a token is required" in err
    assert policies[0].token == TOKEN and not policies[0].allow_writes
    assert "box.lan:9" in policies[0].hosts


def test_a_busy_port_is_one_error_line(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    study, _ = study_in(tmp_path_factory, "busy", n_trials=2)
    url = study._storage._backend.url  # type: ignore[attr-defined]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main([study.study_name, "--storage", url, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1

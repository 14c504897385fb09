"""Storage passwords in every form are hidden from URLs shown to users and from error texts."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from optimizer.redaction import redact, scrub, secrets_in
from tests.conftest import StudyCli

SECRET = "SeCrEt123"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ann:SeCrEt123@db:5432/x", "postgresql://ann:***@db:5432/x"),
        ("postgresql://ann@db/x", "postgresql://ann@db/x"),
        ("sqlite:///studies/a.db", "sqlite:///studies/a.db"),
        ("postgresql://ann@db/x?password=SeCrEt123", "postgresql://ann@db/x?password=***"),
        (
            "postgresql://db/x?sslmode=require&sslpassword=SeCrEt123&passfile=/home/a/.pgpass",
            "postgresql://db/x?sslmode=require&sslpassword=***&passfile=/home/a/.pgpass",
        ),
        ("postgresql://ann:p%40SeCrEt123@db/x", "postgresql://ann:***@db/x"),
        ("postgresql://ann:SeCrEt123@x@db/x", "postgresql://ann:***@db/x"),
        ("postgresql://db/x?PASSWORD=SeCrEt123&a=1", "postgresql://db/x?PASSWORD=***&a=1"),
    ],
)
def test_redact_hides_every_form(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_secrets_are_found_as_written_and_decoded() -> None:
    assert secrets_in("postgresql://ann:p%40ss@db/x?password=a%26b") == {
        "p%40ss",
        "p@ss",
        "a%26b",
        "a&b",
    }
    assert secrets_in("sqlite:///studies/a.db") == set()


def test_scrub_removes_the_password_from_a_driver_message() -> None:
    url = f"postgresql://ann@db/x?password={SECRET}"
    message = f'invalid dsn: "host=db password={SECRET} dbname=x"'
    assert scrub(message, url) == 'invalid dsn: "host=db password=*** dbname=x"'
    assert scrub(message, None) == message


def test_unreachable_postgresql_with_query_password_never_shows_it(
    quick_study_cli: StudyCli,
) -> None:
    url = f"postgresql://ann@127.0.0.1:1/x?password={SECRET}&connect_timeout=2"
    code, out, err = quick_study_cli(url)
    assert code == 2
    assert "cannot open storage" in err and "password=***" in err
    assert SECRET not in out + err


@pytest.mark.parametrize("command", ["report", "validate", "export", "dashboard"])
def test_stored_study_commands_report_unreachable_storage_without_secret(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(COMMAND_MODULES[command])
    url = f"postgresql://ann@127.0.0.1:1/x?password={SECRET}&connect_timeout=2"
    code = module.main(["qwen3-moe", "--storage", url])
    captured = capsys.readouterr()
    assert code == 2
    assert "cannot open storage" in captured.err and "Traceback" not in captured.err
    assert SECRET not in captured.out + captured.err
    assert list(tmp_path.iterdir()) == []


COMMAND_MODULES = {
    "report": "optimizer.report.cli",
    "validate": "optimizer.validate",
    "export": "optimizer.export.cli",
    "dashboard": "optimizer.dashboard",
}


def test_a_password_from_the_environment_is_scrubbed_from_messages_not_from_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", "postgres")
    url = "postgresql://postgres@db/x"
    assert redact(url) == url, "the user name that equals the password stays readable"
    assert scrub("FATAL: password=postgres rejected", url) == "FATAL: password=*** rejected"
    assert scrub("FATAL: password=postgres", "sqlite:///a.db") == "FATAL: password=postgres"


def test_service_and_password_files_give_only_the_entries_that_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = tmp_path / "services"
    services.write_text("[other]\npassword=NotOurs1\n[mine]\nhost=db\npassword=Ours_svc1\n")
    passfile = tmp_path / "pgpass"
    passfile.write_text(
        "# host:port:db:user:password\n"
        "db:5432:x:ann:Ours\\:pass1\n"
        "*:*:*:bob:NotOurs2\n"
        "other:*:*:*:NotOurs3\n"
    )
    for name in ("PGPASSWORD", "PGSERVICE", "PGSYSCONFDIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    assert secrets_in("postgresql://ann@db:5432/x?service=mine") == {"Ours_svc1", "Ours:pass1"}
    assert secrets_in("postgresql://ann@db:5432/x") == {"Ours:pass1"}
    assert secrets_in("sqlite:///studies/a.db") == set()

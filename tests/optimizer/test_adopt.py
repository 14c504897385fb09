"""``--adopt``: a study another program made (or this tool from another space file) is
accepted on request, described, and its foreign trials kept unchanged but left out of the
counts, the front, the report and exports."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import optuna
import pytest

from optimizer.adoption import adopted_before, best_own_trials, own_trials
from optimizer.artifacts import note_keys
from optimizer.cli import main as study_main
from optimizer.export.cli import main as export_main
from optimizer.notes import backfill_notes
from optimizer.record import count_trials, read_all
from optimizer.report.cli import main as report_main
from tests.optimizer.test_foreign_studies import plain_study, snapshot

Write = Callable[[dict[str, object]], Path]
Main = Callable[[list[str]], int]


def run(command: Main, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        code = command(argv)
    return code, out.getvalue(), err.getvalue()


def foreign_values_dominate(url: str, name: str) -> None:
    """Add to a plain study trials that would beat any serving configuration (huge throughput, no
    latency): if they were read as ours they would take the whole front."""
    study = optuna.load_study(study_name=name, storage=url)
    for x in (1.0, 2.0):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x},
                distributions={"x": optuna.distributions.FloatDistribution(0, 10)},
                values=[1e12, 0.0],
            )
        )


def test_adopt_accepts_a_plain_optuna_study_and_keeps_its_trials_apart(
    shipped_space: dict[str, object],
    write_space: Write,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    plain_study(url, "qwen3-moe", ["maximize", "minimize"])
    foreign_values_dominate(url, "qwen3-moe")
    before = snapshot(url, "qwen3-moe")
    space = write_space(shipped_space)
    argv = ["--space", str(space), "--storage", url, "--quiet"]

    code, _, err = run(study_main, [*argv, "--n-trials", "3", "--adopt"])
    assert code == 0, err
    assert "Traceback" not in err
    assert "adopting study 'qwen3-moe', made by another program: 5 trial(s) (5 COMPLETE" in err
    assert "parameters: x" in err and "do not count toward --n-trials" in err

    study = optuna.load_study(study_name="qwen3-moe", storage=url)
    assert snapshot(url, "qwen3-moe")[: len(before)] == before, "adopted trials unchanged"
    assert adopted_before(study) == 5
    assert count_trials(study).finished == 3, "exactly the target of this tool's trials"
    assert {t.number for t in own_trials(study)} == set(range(5, len(study.trials)))
    front = best_own_trials(study)
    assert front and all(t.number >= 5 for t in front), "adopted trials never on the front"
    assert all(r.serve_command for r in read_all(study) if r.state.name == "COMPLETE")

    # A later run continues without --adopt: the study now describes itself.
    code, _, err = run(study_main, [*argv, "--n-trials", "4"])
    assert code == 0, err
    assert "adopting" not in err
    assert count_trials(optuna.load_study(study_name="qwen3-moe", storage=url)).finished == 4

    study = optuna.load_study(study_name="qwen3-moe", storage=url)
    backfill_notes(study)  # what the dashboard does on start
    notes = study._storage.get_study_system_attrs(study._study_id)
    assert not [t for t in study.trials[:5] if note_keys(t._trial_id)[0] in notes]

    code, _, err = run(report_main, ["qwen3-moe", "--storage", url])
    assert code == 0, err
    report = (tmp_path / "qwen3-moe" / "report.md").read_text()
    assert "inf%" not in report and "1e+12" not in report
    code, _, err = run(export_main, [str(space), "--storage", url, "--trial", "1"])
    assert code == 2 and "was adopted from a study another program made" in err


def test_without_adopt_the_refusal_names_it(
    shipped_space: dict[str, object], write_space: Write, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    plain_study(url, "qwen3-moe", ["maximize", "minimize"])
    code, _, err = run(
        study_main,
        ["--space", str(write_space(shipped_space)), "--storage", url, "--n-trials", "2"],
    )
    assert code == 2 and "--adopt" in err and "holds trials this tool did not make" in err


def test_adopt_does_not_accept_other_objectives(
    shipped_space: dict[str, object], write_space: Write, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    plain_study(url, "qwen3-moe", ["maximize"])
    before = snapshot(url, "qwen3-moe")
    argv = ["--space", str(write_space(shipped_space)), "--storage", url, "--n-trials", "2"]
    code, _, err = run(study_main, [*argv, "--adopt"])
    assert code == 2 and "with directions ['maximize']" in err and "Traceback" not in err
    assert snapshot(url, "qwen3-moe") == before
    assert "adopted" not in optuna.load_study(study_name="qwen3-moe", storage=url).user_attrs


def test_adopt_continues_a_study_made_from_another_space_and_says_what_changed(
    shipped_space: dict[str, object],
    write_space: Write,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    old = write_space(shipped_space, "old.yaml")
    assert (
        run(study_main, ["--space", str(old), "--storage", url, "--n-trials", "2", "--quiet"])[0]
        == 0
    )
    changed = {
        **shipped_space,
        "workload": {**dict(shipped_space["workload"]), "num_prompts": 321},
    }  # type: ignore[call-overload]
    new = write_space(changed, "new.yaml")
    argv = ["--space", str(new), "--storage", url, "--n-trials", "3", "--quiet"]
    code, _, err = run(study_main, argv)
    assert code == 2 and "--adopt" in err
    code, _, err = run(study_main, [*argv, "--adopt"])
    assert code == 0, err
    assert "made by this tool from a different space file (changed: workload)" in err
    assert "its 2 finished trial(s) keep their serve commands, count toward --n-trials" in err
    study = optuna.load_study(study_name=str(shipped_space["name"]), storage=url)
    assert adopted_before(study) == 0
    assert count_trials(study).finished == 3

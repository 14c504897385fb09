"""A study this tool did not make is refused with one explanation by the study command, one
without this tool's two objectives by the commands that read trials, and nothing in it
changes."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import optuna
import pytest

from optimizer.cli import main as study_main
from optimizer.report.cli import main as report_main

Write = Callable[[dict[str, object]], Path]
Main = Callable[[list[str]], int]


def plain_study(url: str, name: str, directions: list[str]) -> None:
    """What a user's own Optuna script leaves behind: trials with no description of a space."""
    study = optuna.create_study(study_name=name, storage=url, directions=directions)
    for x in (1.0, 2.0, 3.0):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x},
                distributions={"x": optuna.distributions.FloatDistribution(0, 10)},
                values=[x] * len(directions),
            )
        )


def snapshot(url: str, name: str) -> list[tuple[int, str, object, dict[str, object]]]:
    study = optuna.load_study(study_name=name, storage=url)
    return [(t.number, t.state.name, t.values, t.user_attrs) for t in study.trials]


def run(command: Main, argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = command(argv)
    return code, err.getvalue()


@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize", "minimize"]])
def test_a_study_without_two_objectives_is_refused_by_report(
    tmp_path: Path, directions: list[str]
) -> None:
    command = report_main
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    plain_study(url, "plain", directions)
    before = snapshot(url, "plain")
    code, err = run(command, ["plain", "--storage", url])
    assert code == 2
    assert f"has {len(directions)} objective(s)" in err and "not made by this tool" in err
    assert "Traceback" not in err and err.count("error") == 1
    assert snapshot(url, "plain") == before


def test_the_study_command_does_not_adopt_a_plain_optuna_studys_trials(
    shipped_space: dict[str, object], write_space: Write, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    plain_study(url, "qwen3-moe", ["maximize", "minimize"])
    before = snapshot(url, "qwen3-moe")
    space = write_space(shipped_space)
    code, err = run(study_main, ["--space", str(space), "--storage", url, "--n-trials", "2"])
    assert code == 2
    assert "holds trials this tool did not make" in err and "--study-name" in err
    assert "Traceback" not in err
    assert snapshot(url, "qwen3-moe") == before

"""Real-run settings from the space file and the command line reach the runner.

The space file's `real_run` section gives deadlines and the engine environment; command-line
flags override it; `make_runner` builds the `LocalRunner` with the result (the same runner
object is what every Ray actor receives), and trial files go beside the study's storage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from optimizer.cli import make_runner, parse_args, trials_dir
from optimizer.config import RunnerChoice, real_run_settings
from optimizer.errors import SpecError, UsageError
from optimizer.spec.load import SEARCH_SPACES_DIR
from optimizer.spec.models import RealRunSection
from runners.local import LocalRunner
from runners.settings import RealRunSettings

WriteSpace = Callable[..., Path]


@pytest.fixture
def tiny_space() -> dict[str, object]:
    loaded = yaml.safe_load((SEARCH_SPACES_DIR / "tiny-qwen3-moe-cpu.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_space_files_real_run_section_builds_the_settings(
    tiny_space: dict[str, object], write_space: WriteSpace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SO_TEST_TOKEN", "secret-1")
    tiny_space["real_run"] = {
        "start_deadline_s": 1200,
        "bench_timeout_s": 900.5,
        "stop_grace_s": 3,
        "offline": True,
        "env": {"VLLM_LOGGING_LEVEL": "DEBUG", "OMP_NUM_THREADS": 2},
        "pass_env": ["SO_TEST_TOKEN"],
    }
    config = parse_args(["--space", str(write_space(tiny_space)), "--runner", "local"])
    assert config.runner.real_run == RealRunSettings(
        start_deadline_s=1200.0,
        bench_timeout_s=900.5,
        stop_grace_s=3.0,
        offline=True,
        env=(
            ("OMP_NUM_THREADS", "2"),
            ("SO_TEST_TOKEN", "secret-1"),
            ("VLLM_LOGGING_LEVEL", "DEBUG"),
        ),
    )


def test_command_line_flags_override_the_space_file(
    tiny_space: dict[str, object], write_space: WriteSpace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SO_TEST_EXTRA", "from-shell")
    tiny_space["real_run"] = {"start_deadline_s": 1200, "offline": True, "env": {"A": "file"}}
    config = parse_args(
        [
            "--space",
            str(write_space(tiny_space)),
            "--runner",
            "ray",
            "--ray-worker",
            "local",
            "--start-deadline",
            "2400",
            "--bench-timeout",
            "60",
            "--no-offline",
            "--engine-env",
            "A=flag",
            "--engine-env",
            "B=x=y",
            "--pass-env",
            "SO_TEST_EXTRA",
        ]
    )
    settings = config.runner.real_run
    assert settings.start_deadline_s == 2400.0
    assert settings.bench_timeout_s == 60.0
    assert settings.offline is False
    assert dict(settings.env) == {"A": "flag", "B": "x=y", "SO_TEST_EXTRA": "from-shell"}


def test_without_a_section_the_defaults_apply(
    tiny_space: dict[str, object], write_space: WriteSpace
) -> None:
    config = parse_args(["--space", str(write_space(tiny_space)), "--runner", "local"])
    assert config.runner.real_run == RealRunSettings()


def test_a_variable_to_pass_that_is_not_set_is_a_usage_error() -> None:
    section = RealRunSection(pass_env=["SO_TEST_UNSET_VARIABLE"])
    with pytest.raises(UsageError, match="SO_TEST_UNSET_VARIABLE not set in this environment"):
        real_run_settings(section, environ={})


@pytest.mark.parametrize(
    ("real_run", "message"),
    [
        ({"start_deadline_s": 0}, "real_run.start_deadline_s: Input should be greater than 0"),
        ({"env": {"VLLM_USE_V1": True}}, "true is a YAML boolean; quote the value"),
        ({"pass_env": ["NOT-A-NAME"]}, "real_run.pass_env.0: String should match pattern"),
        ({"deadline": 5}, "real_run.deadline: unknown field"),
    ],
)
def test_a_bad_real_run_section_names_the_field(
    tiny_space: dict[str, object],
    write_space: WriteSpace,
    real_run: dict[str, object],
    message: str,
) -> None:
    tiny_space["real_run"] = real_run
    with pytest.raises(SpecError, match=message):
        parse_args(["--space", str(write_space(tiny_space))])


@pytest.mark.parametrize(
    "flag",
    [
        ["--start-deadline", "0"],
        ["--bench-timeout", "soon"],
        ["--engine-env", "NOEQUALS"],
        ["--pass-env", "1BAD"],
    ],
)
def test_bad_flags_exit_2(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--space", "tiny-qwen3-moe-cpu.yaml", *flag])
    assert exited.value.code == 2
    assert flag[0] in capsys.readouterr().err


def test_make_runner_gives_the_local_runner_the_settings(tmp_path: Path) -> None:
    settings = RealRunSettings(start_deadline_s=1234.0, env=(("A", "1"),))
    for choice in (
        RunnerChoice("local", real_run=settings),
        RunnerChoice("ray", ray_worker="local", real_run=settings),
    ):
        runner = make_runner(choice, tmp_path / "trials")
        assert isinstance(runner, LocalRunner)
        assert runner.settings == settings
        assert runner.launcher.settings == settings
        assert runner.artifacts_dir.is_absolute()


def test_trial_files_go_beside_the_studys_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/elsewhere/mine.db"
    assert trials_dir("mine", url) == tmp_path / "elsewhere" / "mine" / "trials"
    assert trials_dir("mine", None) == Path("studies") / "mine" / "trials"


def test_which_choices_start_a_real_engine() -> None:
    assert RunnerChoice("local").real_engine
    assert RunnerChoice("ray", ray_worker="local").real_engine
    assert not RunnerChoice("ray").real_engine
    assert not RunnerChoice("sim").real_engine
    assert not RunnerChoice("local", emulator_scale=10.0).real_engine

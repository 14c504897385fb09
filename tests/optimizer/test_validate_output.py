"""What `optimizer.validate` prints: each section's columns named, with units and directions,
and what the numbers are; `--emulator-profile` checked before anything is measured."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from optimizer.measurements import load_measurements
from optimizer.spec.load import load_spec
from optimizer.validate import Validator, main
from runners.sim.runner import SimRunner
from tests.optimizer.report_study import study_in


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[optuna.Study, Path]:
    return study_in(tmp_path_factory, "validate-output", n_trials=6, num_prompts=60)


def url_of(study: optuna.Study) -> str:
    return str(study._storage._backend.url)  # type: ignore[attr-defined]


def test_every_section_has_headers_and_every_number_its_unit(
    small: tuple[optuna.Study, Path],
) -> None:
    study, space = small
    lines: list[str] = []
    validator = Validator(
        load_spec(space), study, SimRunner(), repeats=2, top=1, concurrency=[16], workloads=[],
        progress=lines.append,
    )  # fmt: skip
    validator.run()
    headers = [line for line in lines if line.startswith("  kind ")]
    assert len(headers) == 4, "repeats, ablation, concurrency sweep, workloads"
    for header in headers:
        assert "max output throughput" in header and "min p99 TPOT" in header
    assert headers[2].rstrip().endswith("max concurrency")
    rows = [line for line in lines if line.startswith("  ") and line not in headers]
    assert rows
    for row in rows:
        assert "crashed" in row or ("tok/s" in row and (" ms" in row or " s " in row)), row


def test_a_profile_without_the_emulator_is_a_usage_error(
    small: tuple[optuna.Study, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study, space = small
    profile = tmp_path / "p.yaml"
    profile.write_text("description: slower\n")
    argv = [str(space), "--storage", url_of(study), "--emulator-profile", str(profile)]
    assert main(argv) == 2
    assert "--emulator-profile needs --emulator" in capsys.readouterr().err
    assert load_measurements(url_of(study), study.study_name)[0] == [], "nothing measured"


def test_a_bad_profile_stops_before_anything_is_measured(
    small: tuple[optuna.Study, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study, space = small
    profile = tmp_path / "bad.yaml"
    profile.write_text("engines: {vllm: {compute_efficiency: fast}}\n")
    argv = [str(space), "--storage", url_of(study), "--runner", "local", "--emulator", "20"]
    assert main([*argv, "--emulator-profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "compute_efficiency" in err and "Traceback" not in err
    assert load_measurements(url_of(study), study.study_name)[0] == []


@pytest.mark.slow
def test_validate_on_the_emulator_with_a_profile_says_emulated(
    small: tuple[optuna.Study, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study, space = small
    profile = tmp_path / "slow-kernels.yaml"
    profile.write_text(
        "description: kernels 20% slower\nengines: {vllm: {compute_efficiency: 0.8}}\n"
    )
    argv = [str(space), "--storage", url_of(study), "--runner", "local", "--emulator", "20"]
    argv += ["--emulator-profile", str(profile), "--repeats", "2", "--top", "1"]
    argv += ["--concurrency", "16", "--no-workloads", "--no-report"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Emulated:" in out and "slow-kernels.yaml: kernels 20% slower" in out
    _, info = load_measurements(url_of(study), study.study_name)
    assert info["runner"] == "local (emulator, x20, profile slow-kernels.yaml)"
    assert "Emulated:" in str(info["numbers"])

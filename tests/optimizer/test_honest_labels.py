"""What the user reads says what the numbers are: simulated (with the calibration it used),
emulated (with the profile's description) or measured; and trial lines show the space's own
objectives, with names, units and directions."""

from __future__ import annotations

import contextlib
from pathlib import Path

import optuna
import pytest
from optuna_dashboard._note import get_note, get_note_from_system_attrs

from optimizer import study
from optimizer.config import RunnerChoice
from optimizer.provenance import kind_of, provenance_of, trial_kind
from optimizer.spec.load import load_spec
from runners.catalog import get_gpu
from runners.sim import calibration
from runners.sim.provenance import calibration_text, gpu_text
from tests.optimizer.test_open_world_spec import space, write

NAME = "per-gpu-e2e"


def per_gpu_space(tmp_path: Path) -> Path:
    """A small Qwen3-8B space whose objectives are per-GPU throughput and p95 E2E latency."""
    objectives = {
        "throughput": {"metric": "output_throughput", "scope": "gpu"},
        "latency": {"metric": "e2el", "percentile": 95},
    }
    model = {"name": "Qwen3-8B", "variants": {"bf16": "Qwen/Qwen3-8B"}}
    content = space(model, "H100-SXM-80GB", 2, name=NAME, objectives=objectives)
    return write(tmp_path, content, f"{NAME}.yaml")


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 3-trial simulator study of the per-GPU / p95 E2E space, run as a user runs it."""
    root = tmp_path_factory.mktemp("honest")
    space = per_gpu_space(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        out = root / "stdout.txt"
        with out.open("w") as sink, contextlib.redirect_stdout(sink):
            code = study.main(["--space", str(space), "--n-trials", "3"])
    assert code == 0
    return root, out.read_text()


def trial_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "] trial " in line]


def test_the_terminal_says_simulated_with_its_calibration(simulated_run: tuple[Path, str]) -> None:
    _, stdout = simulated_run
    header = stdout[: stdout.index("[")]
    assert "Simulated: every number is an estimate" in header
    assert "H100-SXM-80GB" in header, "the calibration names the GPU's efficiencies"
    measured = [line for line in trial_lines(stdout) if "pre-flight" not in line]
    assert measured and all("  simulated  " in line for line in measured)
    assert "Numbers below: simulated" in stdout


def test_trial_lines_show_the_spaces_own_objectives(simulated_run: tuple[Path, str]) -> None:
    _, stdout = simulated_run
    completed = [line for line in trial_lines(stdout) if "max " in line]
    assert completed, stdout
    for line in completed:
        assert "max output throughput" in line and "tok/s per GPU" in line
        assert "min p95 E2EL" in line
        assert "TPOT" not in line and "TTFT" not in line, "only the space's objectives"


def test_the_report_and_dashboard_notes_say_simulated(simulated_run: tuple[Path, str]) -> None:
    root, _ = simulated_run
    report = (root / "studies" / NAME / "report.md").read_text()
    assert "**Simulated**: every number is an estimate" in report
    assert "calibrated only at the baseline" not in report
    loaded = optuna.load_study(study_name=NAME, storage=f"sqlite:///{root}/studies/{NAME}.db")
    attrs = loaded._storage.get_study_system_attrs(loaded._study_id)
    ran = [t for t in loaded.trials if "rejected:" not in str(t.user_attrs.get("crash_class"))]
    for trial in ran:
        body = str(get_note_from_system_attrs(attrs, trial._trial_id)["body"])
        assert "Simulated: every number is an estimate" in body, body
        assert trial.user_attrs["runner"]["numbers"] == "simulated"
    study_note = get_note(loaded)
    assert "**Simulated**:" in study_note


def test_emulated_numbers_name_the_profile(tmp_path: Path) -> None:
    profile = tmp_path / "slow-vllm.yaml"
    profile.write_text("description: vLLM kernels 20% slower\nengines: {}\n")
    spec = load_spec(per_gpu_space(tmp_path))
    emulated = provenance_of(
        RunnerChoice("emulator", emulator_scale=5.0, emulator_profile=profile), spec
    )
    assert emulated.kind == "emulated"
    assert "slow-vllm.yaml: vLLM kernels 20% slower" in emulated.sentence
    assert emulated.sentence.startswith("Emulated:")
    plain = provenance_of(RunnerChoice("emulator", emulator_scale=5.0), spec)
    assert "no truth profile" in plain.sentence


def test_real_engines_are_measured_and_ray_follows_its_worker() -> None:
    assert kind_of(RunnerChoice("local")) == "measured"
    assert kind_of(RunnerChoice("ray", ray_worker="local")) == "measured"
    assert kind_of(RunnerChoice("ray", ray_worker="sim")) == "simulated"
    assert kind_of(RunnerChoice("sim")) == "simulated"
    assert trial_kind("ray", "measured") == "measured"
    assert trial_kind("sim", "") == "simulated", "older trials: what the runner name implies"
    assert trial_kind("ray", "") is None, "a Ray trial could have been either"


def test_the_calibration_text_says_what_was_fitted_and_what_is_a_prior() -> None:
    fitted_gpus = {key.split(".")[1] for key in calibration.FITTED if key.startswith("gpu.")}
    assert "H100-SXM-80GB" in fitted_gpus, "the shipped calibration covers the main job's GPU"
    assert "fitted on its measurements" in gpu_text(get_gpu("H100-SXM-80GB"))
    assert "L40S-48GB" not in fitted_gpus
    assert "unfitted priors" in gpu_text(get_gpu("L40S-48GB"))
    text = calibration_text(get_gpu("H100-SXM-80GB"), ["vllm", "mindie"])
    fitted_engines = {key.split(".")[1] for key in calibration.FITTED if key.startswith("engine.")}
    assert "mindie" not in fitted_engines
    assert "host costs fitted for vllm" in text and "unfitted priors for mindie" in text

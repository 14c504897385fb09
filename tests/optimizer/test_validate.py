"""`optimizer.validate` on a simulated study: the four parts, storage round trip, report tables;
and the same command with `--runner local` against the engine emulator."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from optimizer.measurements import (
    Measurement,
    dominated,
    interval,
    load_measurements,
    save_measurements,
)
from optimizer.noise import ESTIMATE, noise_of
from optimizer.recommend import recommended
from optimizer.report.build import write_report
from optimizer.report.render import to_markdown
from optimizer.report.validation import ablation_blocks, ablation_finding
from optimizer.space import candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.validate import Validator, ablation_steps, main
from runners.sim import Noise
from runners.sim.runner import SimRunner
from tests.optimizer.report_study import study_in


@pytest.fixture(scope="module")
def validated(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[optuna.Study, Path, list[Measurement]]:
    study, space = study_in(tmp_path_factory, "validate")
    validator = Validator(load_spec(space), study, SimRunner(noise=Noise.typical()))
    measurements = validator.run()
    url = study._storage._backend.url  # type: ignore[attr-defined]
    save_measurements(url, study.study_name, measurements, {"runner": "sim", "repeats": 3})
    return study, space, measurements


def test_four_parts_are_measured(validated: tuple[optuna.Study, Path, list[Measurement]]) -> None:
    study, space, ms = validated
    spec = load_spec(space)
    repeats = [m for m in ms if m.kind == "repeat"]
    subjects = {m.subject for m in repeats}
    assert "baseline" in subjects and len(subjects) <= 1 + spec.validation.top
    assert all(sum(m.subject == s for m in repeats) == 3 for s in subjects)
    pick = recommended(study)
    assert pick is not None
    sweep = [m for m in ms if m.kind == "sweep"]
    assert {m.label for m in sweep} == {"32", "256"}
    assert {m.subject for m in sweep} == {"baseline", f"trial {pick.number}"}
    assert not [m for m in ms if m.kind == "rate"], "a rate sweep only with goodput"
    loads = {m.label for m in ms if m.kind == "workload"}
    assert loads == {spec.workload.name, "random-2000-100"}
    ablation = [m for m in ms if m.kind == "ablation"]
    assert ablation[0].label == "(best as found)" and ablation[-1].label == "(baseline)"
    # noise makes repeats differ; they stay close to each other
    tputs = [m.throughput for m in repeats if m.subject == "baseline" and m.ok]
    assert len(set(tputs)) == 3


def test_measurements_round_trip_through_the_companion_study(
    validated: tuple[optuna.Study, Path, list[Measurement]],
) -> None:
    study, _, ms = validated
    url = study._storage._backend.url  # type: ignore[attr-defined]
    loaded, info = load_measurements(url, study.study_name)
    assert loaded == ms
    assert info["runner"] == "sim"
    assert len(optuna.load_study(study_name=study.study_name, storage=url).trials) == len(
        study.trials
    ), "the search study itself is not written to"


def test_report_renders_validation_tables(
    validated: tuple[optuna.Study, Path, list[Measurement]], tmp_path: Path
) -> None:
    study, _, ms = validated
    md = write_report(study, tmp_path).markdown.read_text()
    assert "### Repeats: does the front hold up?" in md
    assert "### Ablation of the recommended configuration" in md
    assert "### Concurrency sweep: baseline vs optimized" in md
    assert "### Per workload: baseline vs optimized" in md
    assert "| 32 |" in md and "| random-2000-100 |" in md
    finding = ablation_finding([m for m in ms if m.kind == "ablation"], noise_of(ms))
    if finding is not None and finding.throughput_setting:
        assert f"**{finding.throughput_setting}**" in md


def test_ablation_reverts_one_setting_and_its_dependents() -> None:
    spec = load_spec("qwen3-moe.yaml")
    base = candidate_from_params(
        spec,
        {
            "engine": "vllm",
            "model_variant": "bf16",
            **{k: v for k, v in _baseline(spec).items() if k.startswith("vllm.")},
        },
    )
    best_settings = {**base.settings_dict(), "tensor-parallel-size": 4, "data-parallel-size": 2}
    best = base.make(
        "vllm", base.engine_version, base.model, spec.model.variants["fp8"], "fp8", best_settings
    )
    steps = dict(ablation_steps(spec, base, best))
    assert set(steps) == {
        "checkpoint fp8 -> bf16",
        "tensor-parallel-size 4 -> 8",
        "data-parallel-size 2 -> default",
    }
    tp8 = steps["tensor-parallel-size 4 -> 8"].settings_dict()
    assert tp8["tensor-parallel-size"] == 8 and "data-parallel-size" not in tp8
    assert steps["checkpoint fp8 -> bf16"].weight_dtype == "bf16"


def test_a_setting_at_the_engines_own_default_is_no_step() -> None:
    """The issue's "data-parallel-size 1 -> default (+0.0%)": reverting a setting the search
    set to the engine's default changes nothing, so it is not ablated."""
    spec = load_spec("qwen3-moe.yaml")
    base = candidate_from_params(spec, _baseline(spec))
    settings = {**base.settings_dict(), "tensor-parallel-size": 4, "data-parallel-size": 1}
    best = base.make("vllm", base.engine_version, base.model, base.checkpoint, "bf16", settings)
    assert set(dict(ablation_steps(spec, base, best))) == {"tensor-parallel-size 4 -> 8"}


def ablated(label: str, tput: float, lat: float) -> Measurement:
    return Measurement("ablation", "trial 7", 7, label, "cmd", tput, lat)


def test_a_change_within_noise_is_no_measurable_effect() -> None:
    rows = [
        ablated("(best as found)", 1000.0, 50.0),
        ablated("max-num-seqs 256 -> default", 1003.0, 50.4),
        ablated("kv-cache-dtype fp8 -> default", 700.0, 50.2),
        ablated("(baseline)", 600.0, 80.0),
    ]
    text = to_markdown(ablation_blocks(rows, "tput", "lat", ESTIMATE))
    assert "| max-num-seqs 256 -> default | 1,003.0 | no measurable effect |" in text
    assert (
        "| kv-cache-dtype fp8 -> default | 700.0 | -30.0% | 50.2 | no measurable effect |" in text
    )
    assert "+0.3%" not in text
    assert "Contributed most to throughput: **kv-cache-dtype fp8 -> default**" in text
    assert "No setting alone has a measurable effect on latency." in text
    nothing = to_markdown(ablation_blocks(rows[:2], "tput", "lat", ESTIMATE))
    assert "No separable setting has a measurable effect alone" in nothing


def _baseline(spec: object) -> dict[str, object]:
    from optimizer.space import baseline_params

    return dict(baseline_params(spec))  # type: ignore[arg-type]


def test_interval_and_domination() -> None:
    iv = interval([10.0, 12.0, 14.0])
    assert iv.mean == pytest.approx(12.0)
    assert iv.half_width == pytest.approx(4.303 * 2.0 / 3**0.5, rel=1e-3)
    assert iv.contains(15.0) and not iv.contains(17.0)
    assert dominated((10.0, 5.0), [(11.0, 5.0)])
    assert not dominated((10.0, 5.0), [(11.0, 6.0), (10.0, 5.0)])


@pytest.mark.slow
def test_validate_command_with_the_local_runner_on_the_emulator(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    study, space = study_in(tmp_path_factory, "validate-local", n_trials=6, num_prompts=60)
    url = study._storage._backend.url  # type: ignore[attr-defined]
    argv = [str(space), "--storage", url, "--runner", "local", "--emulator", "20"]
    argv += ["--repeats", "2", "--top", "1", "--concurrency", "16", "--no-workloads"]
    assert main(argv) == 0
    ms, info = load_measurements(url, study.study_name)
    assert info["runner"] == "local (emulator, x20)"
    repeats = [m for m in ms if m.kind == "repeat" and m.subject == "baseline"]
    assert len(repeats) == 2 and all(m.ok for m in repeats)
    assert {m.kind for m in ms} == {"repeat", "ablation", "sweep", "workload"}
    report = Path(url.removeprefix("sqlite:///")).parent / study.study_name / "report.md"
    assert "Runner `local (emulator, x20)`" in report.read_text()

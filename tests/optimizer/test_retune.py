"""`python -m optimizer.retune`: drift beyond noise, the recommendation's verdict, warm start.

The statistics (`optimizer.drift`) on numbers worked out by hand; the verdict's reasons; the
engine-version replacement checked against the catalogue; a simulated study that holds under
its own workload and no longer holds under a changed one (then a warm-started study follows);
and, on real engine processes, a study against the emulator whose behaviour changes between
two runs (two truth profiles): no drift under the same profile, drift under the other.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from optimizer.drift import Change, Drift, Runs, compare, pooled_noise, threshold
from optimizer.errors import SpecError, UsageError
from optimizer.retune import Subject, judge, main, with_engine_versions
from optimizer.space import candidate_from_params
from optimizer.spec.load import load_spec
from tests.optimizer.export_study import QWEN3_MOE_TRIALS
from tests.optimizer.report_study import study_in

ROOT = Path(__file__).resolve().parents[2]
EMULATED_SPACE = ROOT / "tests" / "data" / "spaces" / "emulated-small.yaml"


# --- the statistics ------------------------------------------------------------------------


def test_noise_is_the_pooled_relative_spread_of_repeated_runs() -> None:
    a = Runs(throughput=(90.0, 110.0), latency=(10.0, 10.0))  # cv 14.1%, 0
    b = Runs(throughput=(100.0, 100.0, 100.0), latency=(8.0, 10.0, 12.0))  # cv 0, 20%
    single = Runs(throughput=(50.0,), latency=(1.0,))  # one run: no spread to pool
    noise = pooled_noise([a, b, single])
    assert noise is not None and noise.dof == 3
    assert noise.throughput == pytest.approx(math.sqrt(0.1414214**2 / 3), rel=1e-4)
    assert noise.latency == pytest.approx(math.sqrt(2 * 0.2**2 / 3), rel=1e-4)
    assert pooled_noise([single]) is None


def test_drift_is_a_change_beyond_z_standard_errors_and_the_smallest_change() -> None:
    noise = pooled_noise([Runs((98.0, 102.0), (9.8, 10.2))])
    assert noise is not None  # 2.83% on both
    assert threshold(noise, "throughput", 1, 3, 3.0, 0.05) == pytest.approx(
        3 * noise.throughput * math.sqrt(1 + 1 / 3)
    )
    assert threshold(noise, "throughput", 50, 50, 3.0, 0.05) == 0.05  # the floor
    stored = Runs((100.0,), (10.0,))
    small = compare(stored, Runs((96.0, 97.0), (10.1, 10.3)), noise, 3.0, 0.05)
    assert [c.verdict for c in small] == ["holds", "holds"]
    big = compare(stored, Runs((70.0, 72.0), (8.0, 8.1)), noise, 3.0, 0.05)
    assert [c.verdict for c in big] == ["worse", "better"], "throughput down, latency down"
    assert compare(stored, Runs(crashes=("oom:runtime",)), noise, 3.0, 0.05) == ()


def test_a_configuration_that_now_crashes_has_drifted() -> None:
    drift = Drift(1, "trial 1", Runs((100.0,), (10.0,)), Runs(crashes=("oom:runtime",)), ())
    assert drift.drifted and drift.worse
    assert "crashed in 1 of 1 runs (oom:runtime)" in drift.summary


# --- the verdict ---------------------------------------------------------------------------


def subjects(spec_name: str = "qwen3-moe.yaml") -> list[Subject]:
    from optimizer.record import TrialRecord

    spec = load_spec(spec_name)
    out = []
    for number in (1, 3):
        params, values, _ = QWEN3_MOE_TRIALS[number]
        assert values is not None
        record = TrialRecord(
            number=number, state=optuna.trial.TrialState.COMPLETE, params=params, values=values,
            engine=str(params["engine"]), weight_dtype="fp8", serve_command="",
        )  # fmt: skip
        out.append(Subject(record, candidate_from_params(spec, params), number == 1))
    return out


def drifts_for(now: list[Runs]) -> tuple[list[Drift], object]:
    subs = subjects()
    stored = [Runs((s.record.throughput,), (s.record.latency,)) for s in subs]
    noise = pooled_noise(now)
    assert noise is not None
    return [
        Drift(s.record.number, s.label, old, new, compare(old, new, noise, 3.0, 0.05))
        for s, old, new in zip(subs, stored, now, strict=True)
    ], noise


def test_the_recommendation_holds_within_noise() -> None:
    drifts, noise = drifts_for(
        [Runs((5300.0, 5310.0), (300.0, 302.0)), Runs((5030.0, 5040.0), (157.0, 158.0))]
    )
    verdict = judge(subjects(), drifts, noise, 3.0, 0.05)  # type: ignore[arg-type]
    assert verdict.holds and verdict.reasons == ()


def test_the_recommendation_no_longer_holds_when_another_configuration_beats_it() -> None:
    """It did not drift beyond its threshold, but trial 3 now has clearly more throughput."""
    drifts, noise = drifts_for(
        [Runs((5300.0, 5302.0), (300.0, 301.0)), Runs((5990.0, 6000.0), (150.0, 151.0))]
    )
    verdict = judge(subjects(), drifts, noise, 3.0, 0.05)  # type: ignore[arg-type]
    assert not verdict.holds
    assert verdict.reasons == ("trial 3 now beats it (+13.1% throughput, beyond noise)",)


def test_the_recommendation_no_longer_holds_when_it_drifts_worse_or_breaks_an_slo() -> None:
    slow = Runs((3000.0, 3010.0), (300.0, 301.0), ({"p99_ttft_ms <= 2000": 10.0},) * 2)
    drifts, noise = drifts_for([slow, Runs((2900.0, 2910.0), (157.0, 158.0))])
    verdict = judge(subjects(), drifts, noise, 3.0, 0.05)  # type: ignore[arg-type]
    assert not verdict.holds
    assert verdict.reasons[0].startswith("its throughput changed -43.4%")
    assert verdict.reasons[1] == "it now breaks the SLO p99_ttft_ms <= 2000"


def test_change_verdicts_follow_each_objectives_direction() -> None:
    assert Change("throughput", 100.0, 120.0, 0.05).verdict == "better"
    assert Change("latency", 100.0, 120.0, 0.05).verdict == "worse"
    assert Change("latency", 100.0, 103.0, 0.05).verdict == "holds"


def test_validation_repeats_are_the_stored_reference_where_there_are_two() -> None:
    from optimizer.measurements import Measurement
    from optimizer.retune import stored_runs

    record = subjects()[0].record
    repeats = [
        Measurement("repeat", "trial 1", 1, str(i), "", throughput=t, latency=lat)
        for i, (t, lat) in enumerate(((5200.0, 310.0), (5260.0, 305.0)))
    ]
    other = Measurement("repeat", "trial 3", 3, "0", "", throughput=1.0, latency=1.0)
    crashed = Measurement("repeat", "trial 1", 1, "2", "", crash_class="oom:runtime")
    runs, source = stored_runs(record, [*repeats, other, crashed])
    assert (runs.throughput, runs.latency) == ((5200.0, 5260.0), (310.0, 305.0))
    assert runs.crashes == ("oom:runtime",) and source == "2 validation runs"
    runs, source = stored_runs(record, repeats[:1])
    assert (runs.throughput, runs.latency, source) == ((5305.9,), (300.9,), "the search trial")


# --- a new engine release ------------------------------------------------------------------


def test_an_engine_version_is_replaced_and_checked_against_the_catalogue() -> None:
    spec = with_engine_versions(load_spec("qwen3-moe.yaml"), ["vllm=v0.33.1"])
    params = QWEN3_MOE_TRIALS[1][0]
    assert candidate_from_params(spec, params).engine_version == "0.33.1"
    # any published release is accepted (the nearest catalogued one applies); a string that is
    # no version at all is refused
    assert with_engine_versions(spec, ["vllm=0.99"]).engines["vllm"].version == "0.99"
    with pytest.raises(SpecError, match="is not a version number"):
        with_engine_versions(spec, ["vllm=banana"])
    with pytest.raises(UsageError, match="searches no engine 'tgi'"):
        with_engine_versions(spec, ["tgi=1.0"])
    with pytest.raises(UsageError, match="write ENGINE=VERSION"):
        with_engine_versions(spec, ["vllm"])


def test_a_release_without_a_searched_setting_is_refused() -> None:
    """vLLM 0.11 has no --performance-mode, which qwen3-moe searches."""
    with pytest.raises(SpecError, match="performance-mode"):
        with_engine_versions(load_spec("qwen3-moe.yaml"), ["vllm=0.11.0"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repeats", "1"], "--repeats must be at least 2"),
        (["--engine-version", "vllm=banana"], "is not a version number"),
        (["--emulator-profile", "x.yaml"], "need --runner emulator"),
    ],
)
def test_unusable_input_exits_2_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    from tests.optimizer.export_study import make_study

    _, url, _ = make_study(tmp_path, "qwen3-moe.yaml", QWEN3_MOE_TRIALS)
    assert main(["qwen3-moe", "--storage", url, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "studies" / "qwen3-moe" / "retune").exists()


# --- on the simulator ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_changed_workload_is_drift_and_warm_starts_a_new_study(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    study, space = study_in(tmp_path_factory, "retune", n_trials=8)
    url = study._storage._backend.url  # type: ignore[attr-defined]
    base = ["--storage", str(url), "--study-name", "rep", "--top", "2", "--quiet"]
    assert main([str(space), *base]) == 0, "the same workload: the recommendation holds"
    report = json.loads((space.parent / "studies" / "rep" / "retune" / "retune.json").read_text())
    assert report["recommendation_holds"] is True and report["new_study"] is None
    table = (space.parent / "studies" / "rep" / "retune" / "retune.md").read_text()
    assert "| configuration | stored from | output throughput (tok/s): stored |" in table
    assert "holds (within noise)" in table

    content = yaml.safe_load(space.read_text())
    content["workload"] = {**content["workload"], "num_prompts": 20}
    changed = space.parent / "changed.yaml"
    changed.write_text(yaml.safe_dump(content, sort_keys=False))
    assert main([str(changed), *base, "--n-trials", "6"]) == 1
    out = capsys.readouterr().out
    assert "no longer holds: its throughput changed" in out
    new = optuna.load_study(study_name="rep-retune-1", storage=str(url))
    origins = {t.user_attrs.get("warm_start_from") for t in new.trials} - {None}
    assert origins == {f"rep#{t.number}" for t in study.best_trials}
    report = json.loads((space.parent / "studies" / "rep" / "retune" / "retune.json").read_text())
    assert report["new_study"] == "rep-retune-1"
    assert report["configurations"][0]["changes"][0]["verdict"] == "worse"


# --- on the emulator: a real engine whose behaviour changes between two runs --------------


def cli(cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_retune_detects_drift_on_the_emulator_when_its_behaviour_changes(tmp_path: Path) -> None:
    same = tmp_path / "truth.yaml"
    same.write_text("engines: {vllm: {compute_efficiency: 0.8}}\nnoise: {run: 0.01}\n")
    changed = tmp_path / "new-driver.yaml"  # slower kernels, more host overhead per step
    changed.write_text(
        "engines: {vllm: {compute_efficiency: 0.35, memory_bandwidth_efficiency: 0.5,"
        " step_overhead: 4}}\nnoise: {run: 0.01}\n"
    )
    space = str(EMULATED_SPACE)
    emulator = ["--runner", "emulator", "--emulator-time-scale", "2"]
    study = cli(
        tmp_path, "optimizer.study", "--space", space, *emulator, "--emulator-profile",
        str(same), "--n-trials", "3", "--no-anchors", "--quiet",
    )  # fmt: skip
    assert study.returncode == 0, study.stderr
    # HTTP timing on a shared 2-core machine adds a few percent of jitter; changes smaller than
    # 15% are not what this test is about (the slower profile costs about 40%)
    retune = [*emulator, "--repeats", "3", "--top", "2", "--no-study", "--min-change", "0.15"]

    holds = cli(tmp_path, "optimizer.retune", space, *retune, "--emulator-profile", str(same))
    assert holds.returncode == 0, holds.stdout + holds.stderr
    report_file = tmp_path / "studies" / "emulated-small" / "retune" / "retune.json"
    report = json.loads(report_file.read_text())
    assert report["recommendation_holds"] is True
    assert not any(c["drifted"] for c in report["configurations"])

    drifted = cli(tmp_path, "optimizer.retune", space, *retune, "--emulator-profile", str(changed))
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    report = json.loads(report_file.read_text())
    assert report["recommendation_holds"] is False
    recommended = report["configurations"][0]
    assert recommended["drifted"] is True
    worse = [c for c in recommended["changes"] if c["verdict"] == "worse"]
    assert worse, recommended["changes"]
    for change in worse:  # slower: throughput down or latency up, beyond the threshold
        sign = -1 if change["objective"] == "throughput" else 1
        assert sign * change["relative"] > change["threshold"] >= 0.15
    assert "no longer holds" in drifted.stdout

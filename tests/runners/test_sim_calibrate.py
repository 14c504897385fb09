"""`python -m runners.sim.calibrate`: calibration files from a CSV of runs or a folder of
`vllm bench serve` results; bad input is one line naming the file and the row, exit 2, and
nothing written; a poor fit is written as poor and refused by readers unless accepted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from runners.errors import CalibrationError
from runners.sim import replay
from runners.sim.calibrate import main
from runners.sim.calibrate_runs import read_runs
from runners.sim.calibration_file import load_calibration
from runners.sim.fit import fit_calibration, predict
from runners.sim.profile import EngineScales
from tests.runners.calib_runs import bench_json, bench_rows

TRUTH = EngineScales(compute_efficiency=1.3, memory_bandwidth_efficiency=0.8)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return bench_rows(TRUTH, count=3)


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_folder(path: Path, rows: list[dict[str, str]]) -> Path:
    path.mkdir()
    for row in rows:
        (path / f"{row['run_id']}.json").write_text(json.dumps(bench_json(row)))
    return path


def refused(capsys: pytest.CaptureFixture[str], runs: Path, out: Path, *extra: str) -> str:
    """Run the CLI expecting bad input: exit 2, one line, nothing written; the line."""
    assert main(["--runs", str(runs), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "Traceback" not in err
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    return err


def test_a_csv_of_runs_becomes_a_calibration_file(
    tmp_path: Path, rows: list[dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "calibration.yaml"
    runs = write_csv(tmp_path / "runs.csv", rows)
    assert main(["--runs", str(runs), "--out", str(out), "--model", "Qwen3-8B"]) == 0
    assert "calibrated on 3 runs" in capsys.readouterr().out
    document = yaml.safe_load(out.read_text())
    assert document["quality"] == "good"
    assert document["runs"] == [f"{runs} row {i}" for i in (1, 2, 3)]
    assert len(document["input"]["sha256"]) == 64
    assert set(document["error"]) == {
        "total_token_throughput_tok_s",
        "mean_ttft_ms",
        "mean_tpot_ms",
    }
    vllm = document["engines"]["vllm"]
    assert vllm["gpus"] == ["H100-SXM-80GB"]
    assert vllm["compute_efficiency"]["factor"] == pytest.approx(1.3, rel=0.08)
    assert vllm["memory_bandwidth_efficiency"]["factor"] == pytest.approx(0.8, rel=0.08)
    fit = load_calibration(out)
    assert fit.n_runs == 3 and not fit.poor
    assert fit.corrections["vllm.compute_efficiency"][0] == pytest.approx(
        vllm["compute_efficiency"]["factor"]
    )


def test_a_folder_of_bench_results_gives_the_same_calibration(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    from_csv, from_json = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert (
        main(["--runs", str(write_csv(tmp_path / "runs.csv", rows)), "--out", str(from_csv)]) == 0
    )
    folder = write_folder(tmp_path / "results", rows)
    # the serve command may travel in a sibling .cmd file instead of the JSON
    first = folder / "run-1.json"
    data = json.loads(first.read_text())
    (folder / "run-1.cmd").write_text(data.pop("serve_command") + "\n")
    first.write_text(json.dumps(data))
    assert main(["--runs", str(folder), "--out", str(from_json)]) == 0
    a, b = yaml.safe_load(from_csv.read_text()), yaml.safe_load(from_json.read_text())
    assert a["engines"] == b["engines"] and a["error"] == b["error"]
    assert b["runs"] == [str(folder / f"run-{i}.json") for i in (1, 2, 3)]


def test_one_run_is_a_valid_input(tmp_path: Path, rows: list[dict[str, str]]) -> None:
    out = tmp_path / "one.yaml"
    assert main(["--runs", str(write_csv(tmp_path / "one.csv", rows[:1])), "--out", str(out)]) == 0
    vllm = yaml.safe_load(out.read_text())["engines"]["vllm"]
    assert vllm["step_overhead"]["log_sigma"] > vllm["compute_efficiency"]["log_sigma"]


def test_a_json_that_is_not_a_bench_result_is_refused(
    tmp_path: Path, rows: list[dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_folder(tmp_path / "results", rows)
    (folder / "run-2.json").write_text(json.dumps({"model": "x", "throughput": 3}))
    err = refused(capsys, folder, tmp_path / "c.yaml")
    assert "run-2.json" in err and "not a vllm bench serve --save-result file" in err


def test_a_bench_result_without_its_serve_command_is_refused(
    tmp_path: Path, rows: list[dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_folder(tmp_path / "results", rows)
    data = json.loads((folder / "run-3.json").read_text())
    del data["serve_command"]
    (folder / "run-3.json").write_text(json.dumps(data))
    err = refused(capsys, folder, tmp_path / "c.yaml")
    assert "run-3.json: serve_command: missing" in err and "run-3.cmd" in err


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("vllm serve Qwen/Qwen3-8B --max-num-seqs '16", "cannot be parsed"),
        ("vllm serve Qwen/Qwen3-8B --max-num-sequences 16", "max-num-sequences"),
    ],
)
def test_a_serve_command_that_cannot_be_parsed_is_refused(
    tmp_path: Path,
    rows: list[dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    command: str,
    says: str,
) -> None:
    bad = [rows[0], {**rows[1], "serve_command": command}]
    err = refused(capsys, write_csv(tmp_path / "runs.csv", bad), tmp_path / "c.yaml")
    assert "runs.csv row 2" in err and says in err
    folder = write_folder(tmp_path / "results", bad)
    err = refused(capsys, folder, tmp_path / "c.yaml")
    assert "run-2.json" in err and says in err


def test_runs_of_another_model_are_refused(
    tmp_path: Path, rows: list[dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    runs = write_csv(tmp_path / "runs.csv", rows)
    err = refused(capsys, runs, tmp_path / "c.yaml", "--model", "Qwen/Qwen3-14B")
    assert "runs.csv row 1" in err and "Qwen3-8B, not of Qwen3-14B" in err


def test_contradictory_runs_are_refused(
    tmp_path: Path, rows: list[dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    copy = dict(rows[0], run_id="again")
    copy["total_token_throughput"] = str(float(rows[0]["total_token_throughput"]) * 3)
    runs = write_csv(tmp_path / "runs.csv", [*rows, copy])
    err = refused(capsys, runs, tmp_path / "c.yaml")
    assert "runs.csv row 4 and" in err and "runs.csv row 1" in err and "contradictory" in err


def test_an_empty_or_missing_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(capsys, tmp_path / "nowhere.csv", tmp_path / "c.yaml")
    (tmp_path / "empty").mkdir()
    assert "no *.json" in refused(capsys, tmp_path / "empty", tmp_path / "c.yaml")


def test_a_poor_fit_is_written_as_poor_and_refused_unless_accepted(
    tmp_path: Path, rows: list[dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    # the third run claims ten times its throughput: no factors explain all three
    wild = dict(rows[2], total_token_throughput=str(float(rows[2]["total_token_throughput"]) * 10))
    out = tmp_path / "poor.yaml"
    assert (
        main(
            ["--runs", str(write_csv(tmp_path / "runs.csv", [*rows[:2], wild])), "--out", str(out)]
        )
        == 0
    )
    assert "the fit is poor" in capsys.readouterr().out
    assert yaml.safe_load(out.read_text())["quality"] == "poor"
    with pytest.raises(CalibrationError, match=r"poor\.yaml: quality: poor .*accept"):
        load_calibration(out)
    assert load_calibration(out, accept_poor_fit=True).poor


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- a list\n", "not a calibration file"),
        ("format: serving-optimizer-calibration/1\n", "input"),
        ("{unclosed", "not a valid YAML"),
    ],
)
def test_a_bad_calibration_file_is_one_clear_error(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=says) as caught:
        load_calibration(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_calibration_file_naming_an_unknown_engine_is_refused(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    out = tmp_path / "calibration.yaml"
    assert (
        main(["--runs", str(write_csv(tmp_path / "runs.csv", rows[:1])), "--out", str(out)]) == 0
    )
    document = yaml.safe_load(out.read_text())
    document["engines"]["tgi"] = document["engines"]["vllm"]
    out.write_text(yaml.safe_dump(document))
    with pytest.raises(CalibrationError, match=r"engines\.tgi: unknown engine"):
        load_calibration(out)


def test_replay_predicts_with_a_calibration_file(
    tmp_path: Path, rows: list[dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    runs = write_csv(tmp_path / "runs.csv", rows)
    calibration = tmp_path / "calibration.yaml"
    assert main(["--runs", str(runs), "--out", str(calibration)]) == 0
    plain, calibrated = tmp_path / "plain.csv", tmp_path / "calibrated.csv"
    assert replay.main(["--runs", str(runs), "--out", str(plain)]) == 0
    assert (
        replay.main(
            ["--runs", str(runs), "--out", str(calibrated), "--calibration", str(calibration)]
        )
        == 0
    )
    assert f"with the calibration {calibration}: calibrated on 3 runs" in capsys.readouterr().out

    def errors(path: Path) -> list[float]:
        with path.open(newline="") as handle:
            predicted = list(csv.DictReader(handle))
        return [
            abs(float(p["total_token_throughput"]) / float(r["total_token_throughput"]) - 1)
            for p, r in zip(predicted, rows, strict=True)
        ]

    assert max(errors(calibrated)) < 0.05 < max(errors(plain))


def test_replay_refuses_a_poor_or_bad_calibration_and_writes_nothing(
    tmp_path: Path, rows: list[dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    wild = dict(rows[2], total_token_throughput=str(float(rows[2]["total_token_throughput"]) * 10))
    runs = write_csv(tmp_path / "runs.csv", [*rows[:2], wild])
    poor = tmp_path / "poor.yaml"
    assert main(["--runs", str(runs), "--out", str(poor)]) == 0
    capsys.readouterr()
    out = tmp_path / "pred.csv"
    for calibration in (poor, tmp_path / "missing.yaml"):
        assert (
            replay.main(
                ["--runs", str(runs), "--out", str(out), "--calibration", str(calibration)]
            )
            == 2
        )
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(calibration) in err
        assert not out.exists()
    args = ["--runs", str(runs), "--out", str(out), "--calibration", str(poor)]
    assert replay.main([*args, "--accept-poor-fit"]) == 0 and out.exists()


def test_the_file_keeps_what_predictions_need(tmp_path: Path, rows: list[dict[str, str]]) -> None:
    runs = write_csv(tmp_path / "runs.csv", rows)
    out = tmp_path / "calibration.yaml"
    assert main(["--runs", str(runs), "--out", str(out)]) == 0
    observations = read_runs(runs, None, None)
    fitted, loaded = fit_calibration(observations), load_calibration(out)
    cfg, load = observations[0].config, observations[0].workload
    direct, from_file = predict(cfg, load, fitted), predict(cfg, load, loaded)
    assert from_file.log_sigma == pytest.approx(direct.log_sigma, rel=0.01)
    assert from_file.metrics is not None and direct.metrics is not None
    assert from_file.metrics.total_token_throughput_tok_s == pytest.approx(
        direct.metrics.total_token_throughput_tok_s, rel=0.01
    )
    # the corrections the runs pin down leave less doubt than the prior alone
    assert from_file.log_sigma < predict(cfg, load, None).log_sigma

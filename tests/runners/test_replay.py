"""`python -m runners.sim.replay`: measured rows in, predictions out, never a crash of the tool."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from runners.sim.replay import OUT_COLUMNS, load_case, main, predict

HEADER = (
    "run_id,model,gpu,engine,engine_version,flags_json,env,dataset,input_len,output_len,"
    "num_prompts,request_rate,max_concurrency,num_gpus_used"
)


def row(**values: str) -> dict[str, str]:
    base = {
        "run_id": "r1",
        "model": "Qwen/Qwen3-14B",
        "gpu": "h100",
        "engine": "vllm",
        "engine_version": "v0.11.0",
        "flags_json": "{}",
        "env": "",
        "dataset": "random",
        "input_len": "512",
        "output_len": "32",
        "num_prompts": "40",
        "request_rate": "inf",
        "max_concurrency": "",
        "num_gpus_used": "1",
    }
    base.update(values)
    return base


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER.split(","))
        writer.writeheader()
        writer.writerows(rows)


def test_a_known_row_is_predicted_with_vllm_bench_metric_names() -> None:
    pred = predict(load_case(row()))
    assert pred["outcome"] == "ok"
    for name in ("total_token_throughput", "output_throughput", "ttft_mean_ms", "tpot_p99_ms"):
        value = pred[name]
        assert isinstance(value, float) and value > 0
    assert pred["total_input_tokens"] == 40 * 512


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"model": "acme/NoSuchModel-7B"}, "unknown model"),
        ({"gpu": "tpu-v5"}, "unknown GPU"),
        ({"engine": "llamacpp"}, "engine"),
        ({"dataset": "sonnet"}, "dataset"),
        ({"flags_json": '{"no_such_flag": 3}'}, "no setting 'no_such_flag'"),
        ({"flags_json": "not json"}, "JSON"),
    ],
)
def test_rows_the_tool_cannot_express_are_errors_with_the_reason(
    change: dict[str, str], words: str
) -> None:
    pred = predict(load_case(row(**change)))
    assert pred["outcome"] == "error"
    assert words.lower() in str(pred["reason"]).lower()


def test_engine_refusals_are_crashes_with_the_engine_text() -> None:
    too_many = predict(load_case(row(flags_json='{"tensor_parallel_size": 3}', num_gpus_used="3")))
    assert too_many["outcome"] == "crash"
    assert too_many["crash_class"]


def test_cli_writes_one_row_per_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, out = tmp_path / "runs.csv", tmp_path / "pred.csv"
    write_csv(runs, [row(run_id="a"), row(run_id="b", model="nope/nope"), row(run_id="c")])
    assert main(["--runs", str(runs), "--out", str(out)]) == 0
    with out.open(newline="", encoding="utf-8") as handle:
        got = list(csv.DictReader(handle))
    assert [g["run_id"] for g in got] == ["a", "b", "c"]
    assert [g["outcome"] for g in got] == ["ok", "error", "ok"]
    assert set(OUT_COLUMNS) <= set(got[0])
    assert got[0]["total_token_throughput"] == got[2]["total_token_throughput"]
    assert "3 predictions" in capsys.readouterr().out


def test_missing_input_file_is_a_clean_error(tmp_path: Path) -> None:
    assert main(["--runs", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o.csv")]) == 2

"""`python -m runners.sim.replay`: measured rows in, predictions out, never a crash of the tool.

Every published row predicts or says why; rows of releases outside the catalogue, names with
quantization suffixes, models known only by their config.json and rows without a node size
predict (the failures the open-world issue listed)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from runners.catalog.resolve import MODELS_DIR_ENV
from runners.sim.replay import OUT_COLUMNS, load_case, load_cases, main, predict

DATA = Path(__file__).resolve().parent.parent / "data"
PUBLISHED = Path(__file__).resolve().parents[2] / "runners" / "sim" / "data" / "calibration"


@pytest.fixture(autouse=True)
def no_local_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)


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


def test_every_published_row_predicts_or_says_why() -> None:
    cases = load_cases(PUBLISHED)
    assert len(cases) == 81  # 79 result blocks and crashes, 2 conclusion-table headlines
    outcomes = [predict(case)["outcome"] for _, case in cases]
    predicted = sum(o in ("ok", "crash") for o in outcomes)
    assert predicted / len(cases) >= 0.95
    for (row, case), outcome in zip(cases, outcomes, strict=True):
        if row.get("outcome") == "crash":
            assert outcome == "crash", row["run_id"]  # the published crashes are predicted
        if outcome == "error":
            assert case.error and "\n" not in case.error


@pytest.mark.parametrize(
    ("engine", "version", "gpu", "flags", "used"),
    [
        ("vllm", "v0.10.1.1", "h100", "{}", "0.11.0"),
        ("vllm", "v0.12.0", "h100", "{}", "0.11.0"),
        ("vllm", "0.15.1", "h100", "{}", "0.11.0"),
        ("vllm", "v0.18.0", "h100", "{}", "0.11.0"),
        ("sglang", "v0.5.1", "h100", "{}", "0.5.4"),
        ("trtllm", "1.0.0", "h100", "{}", "1.2.0"),
        ("vllm-ascend", "v0.9.1", "910B", "{}", "0.11.0"),
    ],
)
def test_releases_outside_the_catalogue_predict_with_a_note(
    engine: str, version: str, gpu: str, flags: str, used: str
) -> None:
    case = load_case(row(engine=engine, engine_version=version, gpu=gpu, flags_json=flags))
    pred = predict(case)
    assert pred["outcome"] == "ok", pred["reason"]
    assert f"{used} applies" in str(pred["note"])


def test_strict_versions_make_uncatalogued_releases_errors() -> None:
    pred = predict(load_case(row(engine_version="0.12.0"), strict_versions=True))
    assert pred["outcome"] == "error" and "not in the catalogue" in str(pred["reason"])


@pytest.mark.parametrize(
    ("model", "gpu"),
    [
        ("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "h100"),
        ("meta-llama/Llama-3.1-70B-Instruct-FP8", "h100"),
        ("nvidia/Llama-3.1-8B-Instruct-FP8", "h100"),
        ("Qwen/Qwen3-32B-W8A8", "a100"),
        ("Qwen/Qwen3-14B-AWQ", "a100"),
        ("Qwen/Qwen3-8B-GPTQ-Int4", "l4"),
    ],
)
def test_names_with_suffixes_are_the_base_model_plus_a_variant(model: str, gpu: str) -> None:
    # block-FP8 Qwen3-235B shards whole 128-wide blocks at TP4 (TP8 is the engine's crash)
    tp = {"235B": 4, "70B": 8}
    size = next((n for key, n in tp.items() if key in model), 1)
    flags = f'{{"tensor_parallel_size": {size}}}'
    pred = predict(load_case(row(model=model, gpu=gpu, flags_json=flags, num_gpus_used="")))
    assert pred["outcome"] == "ok", pred["reason"]


def test_a_quantized_row_runs_at_its_formats_speed() -> None:
    bf16 = predict(load_case(row(model="Qwen/Qwen3-32B", gpu="a100")))
    int8 = predict(load_case(row(model="Qwen/Qwen3-32B-W8A8", gpu="a100")))
    assert float(int8["total_token_throughput"]) > float(bf16["total_token_throughput"])


def test_a_model_outside_the_catalogue_from_a_models_folder(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("mistralai--Mixtral-8x7B-Instruct-v0.1.json", "deepseek-ai--DeepSeek-V3.json"):
        shutil.copy(DATA / "models" / name, folder / name)
    mixtral = row(
        model="mistralai/Mixtral-8x7B-Instruct-v0.1",
        flags_json='{"tensor_parallel_size": 2}',
        num_gpus_used="",
    )
    pred = predict(load_case(mixtral, models_dir=folder))
    assert pred["outcome"] == "ok", pred["reason"]
    assert "2 GPUs" in str(pred["note"])
    deepseek = row(
        model="deepseek-ai/DeepSeek-V3",
        gpu="h200",
        flags_json='{"tensor_parallel_size": 8}',
        num_gpus_used="",
    )
    pred = predict(load_case(deepseek, models_dir=folder))
    assert pred["outcome"] == "ok", pred["reason"]


def test_rows_without_a_node_size_take_the_gpus_their_flags_need() -> None:
    case = load_case(
        row(
            model="Qwen/Qwen3-235B-A22B-Instruct-2507",
            flags_json='{"tensor_parallel_size": 8}',
            num_gpus_used="",
        )
    )
    assert case.config is not None and case.config.tensor_parallel == 8
    assert "no node size given: 8 GPUs" in case.note


def test_a_headline_row_gives_its_serve_command() -> None:
    headline = {
        "headline_id": "hl-1",
        "model": "Qwen/Qwen3-14B",
        "gpu": "a100",
        "num_gpus": "1",
        "engine": "trtllm",
        "engine_version": "v1.2.0rc1",
        "config_desc": "trtllm-serve Qwen/Qwen3-14B --max_seq_len=40960 --enable_chunked_prefill",
        "dataset": "sharegpt",
        "num_prompts": "200",
    }
    case = load_case(headline)
    assert case.config is not None, case.error
    assert case.config.max_model_len == 40960 and case.config.chunked_prefill
    assert predict(case)["outcome"] == "ok"


def test_an_unknown_figure_is_an_error_row_never_a_crash_of_the_tool() -> None:
    pred = predict(load_case(row(model="Qwen/Qwen3-8B-FP8", gpu="H20")))
    assert pred["outcome"] == "error"
    assert "FP8 dense TFLOPS is unknown" in str(pred["reason"])


def test_cli_reads_a_folder_and_prints_how_many_rows_it_predicted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pred.csv"
    assert main(["--runs", str(PUBLISHED), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "predicted 81 of 81 rows (100.0%)" in printed

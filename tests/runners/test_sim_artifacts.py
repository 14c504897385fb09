"""The simulator writes its own trial artifacts (benchmark JSON, engine log), marked simulated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runners.bench.results import metrics_from_vllm_json
from runners.sim.runner import SimRunner
from runners.types import Candidate, NodeGroup, Placement, Workload

H100X8 = Placement(NodeGroup("h100x8", "H100-SXM-80GB", 8), tuple(range(8)))
WORK = Workload(name="w", dataset="random", num_prompts=32, input_len=256, output_len=16)
MODEL, CKPT = "Qwen3-235B-A22B-Instruct-2507", "Qwen/Qwen3-235B-A22B-Instruct-2507"


def candidate(engine: str, version: str, settings: dict[str, object]) -> Candidate:
    return Candidate.make(engine, version, MODEL, CKPT, "bf16", settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("engine", "version", "settings", "kv_line"),
    [
        ("vllm", "0.33.0", {"tensor-parallel-size": 8}, "GPU KV cache size:"),
        ("sglang", "0.5.23", {"tp-size": 8}, "KV Cache is allocated. #tokens:"),
        ("trtllm", "1.2.0", {"tp_size": 8}, "[TensorRT-LLM][INFO] Allocated paged KV cache"),
    ],
)
def test_a_completed_trial_leaves_bench_json_and_a_log_in_the_engines_format(
    tmp_path: Path, engine: str, version: str, settings: dict[str, object], kv_line: str
) -> None:
    outcome = SimRunner(artifacts_dir=tmp_path).run(
        candidate(engine, version, settings), WORK, H100X8
    )
    assert outcome.status == "ok" and outcome.metrics is not None
    files = dict(outcome.artifacts)
    assert set(files) == {"benchmark_json", "engine_log"}
    bench, log = Path(files["benchmark_json"]), Path(files["engine_log"])
    assert bench.parent == log.parent and bench.parent.parent == tmp_path
    document = json.loads(bench.read_text())
    assert document["simulated"] is True
    again = metrics_from_vllm_json(bench, num_gpus=8)
    assert again.output_throughput_tok_s == pytest.approx(outcome.metrics.output_throughput_tok_s)
    text = log.read_text()
    assert text.startswith("# SIMULATED engine log")
    assert kv_line in text
    assert "benchmark finished: 32 requests" in text


def test_a_crash_leaves_the_engine_text_in_the_log_and_no_bench_json(tmp_path: Path) -> None:
    outcome = SimRunner(artifacts_dir=tmp_path).run(
        candidate("vllm", "0.33.0", {"tensor-parallel-size": 3}), WORK, H100X8
    )
    assert outcome.status == "crashed" and outcome.crash is not None
    files = dict(outcome.artifacts)
    assert set(files) == {"engine_log"}
    text = Path(files["engine_log"]).read_text()
    assert outcome.crash.message in text
    assert "ERROR" in text


def test_without_a_folder_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    outcome = SimRunner().run(
        candidate("vllm", "0.33.0", {"tensor-parallel-size": 8}), WORK, H100X8
    )
    assert outcome.status == "ok"
    assert outcome.artifacts == ()
    assert list(tmp_path.iterdir()) == []

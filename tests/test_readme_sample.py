"""README's sample output is what the main job prints today (scripts/readme_sample.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_sample() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "readme_sample", ROOT / "scripts" / "readme_sample.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_readme_sample_output_is_current() -> None:
    script = readme_sample()
    readme = (ROOT / "README.md").read_text()
    wanted = script.with_sample(readme, script.block(script.run_main_job()))
    assert wanted == readme, "README sample output is stale: run python scripts/readme_sample.py"


def test_the_excerpt_keeps_the_lines_a_reader_needs() -> None:
    script = readme_sample()
    printed = "\n".join(
        [
            "Study 'x' in sqlite:///studies/x.db: 0 trials finished, running 3 more.",
            "Simulated: every number is an estimate of the embedded simulated engine, not a",
            "    measurement. Basis: calibration of ...",
            "[  1/3] trial   0  simulated  max output throughput  4,011 tok/s  | vllm bf16",
            "[  1/3] trial   1  PRUNED rejected:weights_oom (pre-flight, no runner time)  | x",
            "[  2/3] trial   2  PRUNED oom:runtime  | vllm fp8 " + "max-num-seqs=64 " * 12,
            "[  3/3] trial   3  simulated  max output throughput  5,000 tok/s  | trtllm fp8",
            "",
            "Numbers below: simulated (see the start of the output).",
            "Pareto front: 1 points of 2 completed trials",
            " trial  placement",
            "----------------",
            "    3  2 x 4 GPUs",
            "        trtllm-serve x",
            "",
            "Recommended: trial 3 (rule: throughput within noise of the best, ...).",
            "Browse it: python -m optimizer.dashboard x",
        ]
    )
    lines = script.excerpt(printed)
    assert lines[0].startswith("Study 'x'")
    assert lines[1].startswith("Simulated:") and lines[2].endswith("calibration of ..."), (
        "what the numbers are stays in the excerpt"
    )
    assert "Numbers below: simulated (see the start of the output)." in lines
    assert any("oom:runtime" in line and line.endswith(" ...") for line in lines)
    assert all(len(line) <= script.WIDTH for line in lines)
    assert lines[-1] == "Browse it: python -m optimizer.dashboard x"
    assert "    3  2 x 4 GPUs" in lines

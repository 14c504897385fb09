"""What `LocalRunner` actually starts: the vLLM shim or the emulator, with this `runners` package.

The engine child runs from its trial folder, so `python -m runners...` would otherwise import
whatever checkout the editable install points at (e.g. a CI clone), not the caller's code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import runners
from runners.engines import launch_spec
from runners.local import EmulatorLaunch, LocalRunner
from runners.types import Candidate, NodeGroup, Placement

PLACEMENT = Placement(NodeGroup("cpu", "CPU-2core-AVX512", 1), (0,))
ROOT = str(Path(runners.__file__).resolve().parents[1])
TINY = Candidate.make(
    "vllm", "0.32.0", "tiny-qwen3-moe", "models/tiny-qwen3-moe", "bf16", {"enforce-eager": True}
)


def test_vllm_runs_through_the_shim_with_this_package_first(tmp_path: Path) -> None:
    spec = LocalRunner(tmp_path).command(launch_spec(TINY, PLACEMENT, 9000), TINY, PLACEMENT)
    assert spec.argv[:4] == (sys.executable, "-m", "runners.vllm_entry", "serve")
    assert spec.argv[-1] == "--enforce-eager"
    env = dict(spec.env)
    assert env["PYTHONPATH"].split(":")[0] == ROOT
    assert env["CUDA_VISIBLE_DEVICES"] == "0"


def test_emulator_gets_the_engine_argv_after_a_separator(tmp_path: Path) -> None:
    runner = LocalRunner(tmp_path, emulator=EmulatorLaunch(time_scale=4.0))
    spec = runner.command(launch_spec(TINY, PLACEMENT, 9000), TINY, PLACEMENT)
    assert spec.argv[1:3] == ("-m", "runners.sim.serve")
    split = spec.argv.index("--")
    assert spec.argv[split + 1 : split + 3] == ("vllm", "serve")
    assert spec.argv[spec.argv.index("--time-scale") + 1] == "4"
    assert dict(spec.env)["PYTHONPATH"].split(":")[0] == ROOT

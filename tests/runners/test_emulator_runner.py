"""LocalRunner against the emulator (`python -m runners.sim.serve`): real processes, real HTTP.

Covers the lifecycle contract: success with artifacts, a crash at start classified at once,
a crash under load, hangs at start and under load turned into timeouts, and teardown that
leaves no process of the trial's group and frees its port.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runners.local import EmulatorLaunch, LocalRunner, RealRunSettings
from runners.process import group_pids, port_is_free
from runners.types import Candidate, CrashClass, NodeGroup, Placement, TrialOutcome, Workload

pytestmark = pytest.mark.slow

NODE = NodeGroup("h100", "H100-SXM-80GB", 8)
PLACEMENT = Placement(NODE, tuple(range(8)))
SMALL = Workload("w", "random", 40, input_len=64, output_len=16)


def candidate(**settings: int | float | str | bool) -> Candidate:
    return Candidate.make(
        "vllm", "0.33.0", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", settings
    )


def runner(
    tmp_path: Path, time_scale: float = 20.0, hang: str = "none", **deadlines: float
) -> LocalRunner:
    launch = EmulatorLaunch(time_scale=time_scale, startup_s=0.2, hang=hang)
    return LocalRunner(tmp_path, RealRunSettings(**deadlines), emulator=launch, num_warmups=0)


def realtime_allowed() -> bool:
    """Whether a process started here may take SCHED_FIFO 1 (asked in a child, which exits)."""
    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def assert_clean(outcome: TrialOutcome) -> None:
    assert outcome.launch is not None
    assert port_is_free(outcome.launch.host, outcome.launch.port)
    log = dict(outcome.artifacts)["engine_log"]
    assert Path(log).exists()


def test_success_returns_metrics_and_artifacts(tmp_path: Path) -> None:
    outcome = runner(tmp_path).run(candidate(**{"tensor-parallel-size": 8}), SMALL, PLACEMENT)
    assert outcome.status == "ok", outcome.crash
    assert outcome.metrics is not None
    assert outcome.metrics.completed == 40
    assert outcome.metrics.failed == 0
    assert outcome.metrics.total_output_tokens == 40 * 16
    diagnostics = dict(outcome.diagnostics)
    assert diagnostics["time_scale"] == 20.0
    # the send log's lateness travels with the trial: never negative (no send is early)
    assert 0.0 <= diagnostics["send_lateness_p50_ms"] <= diagnostics["send_lateness_p99_ms"]
    assert diagnostics["send_lateness_p99_ms"] <= diagnostics["send_lateness_max_ms"]
    # and whether the send clock ran at a real-time priority, as this machine allows
    assert diagnostics["send_clock_realtime"] == (1.0 if realtime_allowed() else 0.0)
    bench = json.loads(Path(dict(outcome.artifacts)["benchmark_json"]).read_text())
    assert bench["completed"] == 40
    assert bench["emulator_time_scale"] == 20.0
    for key in ("output_throughput", "mean_ttft_ms", "p99_tpot_ms", "median_itl_ms"):
        assert key in bench
    assert_clean(outcome)


def test_crash_at_start_is_classified_from_the_log(tmp_path: Path) -> None:
    bad = candidate(**{"max-num-batched-tokens": 64, "max-num-seqs": 128})
    outcome = runner(tmp_path, start_deadline_s=300.0).run(bad, SMALL, PLACEMENT)
    assert outcome.status == "crashed"
    assert outcome.crash is not None
    assert outcome.crash.crash_class == CrashClass.INVALID_CONFIG
    assert outcome.crash.phase == "startup"
    assert "must be greater than or equal to max_num_seqs" in outcome.crash.message
    # classified when the process exited, not when the 300 s deadline passed
    assert dict(outcome.diagnostics)["startup_s"] < 300.0
    assert_clean(outcome)


def test_unknown_flag_is_an_argparse_error(tmp_path: Path) -> None:
    outcome = runner(tmp_path).run(
        candidate(**{"kv-cache-dtype": "fp8"}),
        SMALL,
        PLACEMENT,
    )
    assert outcome.status in ("ok", "crashed")  # a valid choice must at least start
    assert_clean(outcome)


def test_crash_under_load_is_classified(tmp_path: Path) -> None:
    oom = candidate(**{"max-num-batched-tokens": 65536, "tensor-parallel-size": 1})
    heavy = Workload("heavy", "random", 300, input_len=256, output_len=8)
    outcome = runner(tmp_path).run(oom, heavy, PLACEMENT)
    assert outcome.status == "crashed"
    assert outcome.crash is not None
    assert outcome.crash.crash_class == CrashClass.RUNTIME_OOM
    assert outcome.crash.phase == "load"
    assert_clean(outcome)


def test_hang_at_start_times_out(tmp_path: Path) -> None:
    outcome = runner(tmp_path, hang="start", start_deadline_s=3.0).run(
        candidate(), SMALL, PLACEMENT
    )
    assert outcome.crash is not None
    assert outcome.crash.crash_class == CrashClass.START_TIMEOUT
    assert_clean(outcome)


def test_hang_under_load_times_out_and_teardown_kills_the_group(tmp_path: Path) -> None:
    outcome = runner(tmp_path, hang="load", bench_timeout_s=3.0).run(
        candidate(**{"tensor-parallel-size": 8}), SMALL, PLACEMENT
    )
    assert outcome.crash is not None
    assert outcome.crash.crash_class == CrashClass.LOAD_TIMEOUT
    assert outcome.crash.phase == "load"
    assert outcome.launch is not None
    assert_clean(outcome)


def test_teardown_leaves_no_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    from typing import Any

    seen: list[int] = []

    class Spy(subprocess.Popen[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self.pid)

    monkeypatch.setattr(subprocess, "Popen", Spy)
    outcome = runner(tmp_path).run(candidate(**{"tensor-parallel-size": 8}), SMALL, PLACEMENT)
    monkeypatch.undo()
    assert outcome.status == "ok"
    assert seen
    assert all(group_pids(pid) == [] for pid in seen)
    assert_clean(outcome)


AGREEMENT = 0.15


@pytest.mark.parametrize(
    ("workload", "scale"),
    [
        (Workload("burst", "random", 120, input_len=512, output_len=64), 0.2),
        (
            Workload("poisson", "random", 80, input_len=256, output_len=64, request_rate=40.0),
            0.2,
        ),
    ],
    ids=["all-at-once", "poisson-40"],
)
def test_emulator_agrees_with_the_in_process_simulator(
    tmp_path: Path, workload: Workload, scale: float
) -> None:
    """Same configuration and workload: LocalRunner + emulator vs SimRunner, within 15%.

    The emulator runs slower than real time (`scale` < 1) so that the Python HTTP stack on both
    sides streams well below its chunk-rate limit, and a re-simulation per arrival stays small
    against the arrival gaps, on a shared 2-core machine.
    """
    from runners.sim.runner import SimRunner

    config = candidate(**{"tensor-parallel-size": 8})
    simulated = SimRunner().run(config, workload, PLACEMENT)
    emulated = runner(tmp_path, time_scale=scale).run(config, workload, PLACEMENT)
    assert simulated.metrics is not None
    assert emulated.status == "ok", emulated.crash
    assert emulated.metrics is not None
    assert emulated.metrics.completed == workload.num_prompts
    sim, emu = simulated.metrics, emulated.metrics
    report = (
        f"{workload.name}: output tok/s sim {sim.output_throughput_tok_s:,.0f} emulator "
        f"{emu.output_throughput_tok_s:,.0f}; mean TTFT ms sim {sim.ttft_ms.mean:,.1f} emulator "
        f"{emu.ttft_ms.mean:,.1f}; mean TPOT ms sim {sim.tpot_ms.mean:.2f} emulator "
        f"{emu.tpot_ms.mean:.2f}"
    )
    print(report)
    throughput = emu.output_throughput_tok_s / sim.output_throughput_tok_s
    ttft = emu.ttft_ms.mean / sim.ttft_ms.mean
    assert abs(throughput - 1.0) <= AGREEMENT, report
    assert abs(ttft - 1.0) <= AGREEMENT, report
    assert_clean(emulated)

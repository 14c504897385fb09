"""The study's progress: a live display (done of total, ETA, each running trial's phase, the
best so far) on a terminal; plain trial lines when the output is not one (CI)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimizer.live import StudyProgress, clock
from optimizer.spec.load import load_spec
from runners.local import EmulatorLaunch, LocalRunner
from runners.phases import Phase, phase_listener, report_phase
from runners.pool import InlinePool
from runners.types import Candidate, NodeGroup, Placement, TrialOutcome, Workload

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "optimizer.study", "--space", "qwen3-moe.yaml", "--n-trials", "4"]
ESCAPE = "\x1b["


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLUMNS": "150"}


def progress(total: int = 10) -> StudyProgress:
    return StudyProgress(
        total=total, done=0, kind="simulated", objectives=load_spec("qwen3-moe.yaml").objectives
    )


def test_status_shows_done_of_total_eta_phases_and_the_best_feasible_so_far(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = progress(total=10)
    shown.started -= 100.0  # this run began 100 s ago
    shown.trial_started(0, "vllm bf16 (defaults)")
    shown.trial_started(1, "sglang fp8 tp-size=4")
    shown.phase(1, "warming up")
    shown.finished(0, 1, "[  1/10] trial   0 line", (4000.0, 230.0), feasible=True)
    shown.finished(2, 1, "[  1/10] trial   2 rejected", None, ran=False)
    shown.finished(3, 2, "[  2/10] trial   3 line", (9000.0, 10.0), feasible=False)
    lines = shown.status_lines(now=shown.started + 100.0)
    assert lines[0].startswith("2/10 trials done  elapsed 1:40  ETA 6:40"), lines[0]
    assert "max output throughput 4,000.0 tok/s (trial 0)" in lines[1], "breaks an SLO: not best"
    assert "min p99 TPOT 230.0 ms (trial 0)" in lines[1]
    assert lines[2].startswith("trial   1  warming up") and lines[2].endswith("tp-size=4")
    assert len(lines) == 3, "finished trials leave the running list"
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "[  1/10] trial   0 line",
        "[  1/10] trial   2 rejected",
        "[  2/10] trial   3 line",
    ]


def test_the_eta_waits_for_a_first_trial_and_clock_reads_hours() -> None:
    assert "ETA after the first trial" in progress().status_lines()[0]
    assert clock(3725) == "1:02:05" and clock(65) == "1:05"


class PhasedRunner:
    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        for phase in ("launching", "warming up", "measuring"):
            report_phase(phase)  # type: ignore[arg-type]
        return TrialOutcome("infra_error")


def test_the_pool_names_the_trial_whose_runner_reports_a_phase() -> None:
    seen: list[tuple[int, Phase]] = []
    pool = InlinePool(PhasedRunner(), NodeGroup("g", "H100-SXM-80GB", 8))
    candidate = Candidate.make("vllm", "0.33.0", "Qwen3-8B", "Qwen/Qwen3-8B", "bf16", {})
    pool.submit(7, candidate, Workload("w", "random", 4, input_len=8, output_len=4))
    with phase_listener(lambda key, phase: seen.append((key, phase))):
        pool.wait(1.0)
    assert seen == [(7, "launching"), (7, "warming up"), (7, "measuring")]
    report_phase("measuring")  # outside a trial and a listener: reported into nothing


@pytest.mark.slow
def test_a_real_runner_reports_launching_warming_up_and_measuring(tmp_path: Path) -> None:
    runner = LocalRunner(tmp_path, emulator=EmulatorLaunch(time_scale=20.0, startup_s=0.2))
    pool = InlinePool(runner, NodeGroup("h100", "H100-SXM-80GB", 8))
    candidate = Candidate.make(
        "vllm",
        "0.33.0",
        "Qwen3-30B-A3B",
        "Qwen/Qwen3-30B-A3B",
        "bf16",
        {"tensor-parallel-size": 8},
    )
    seen: list[Phase] = []
    pool.submit(3, candidate, Workload("w", "random", 20, input_len=64, output_len=16))
    with phase_listener(lambda _key, phase: seen.append(phase)):
        (done,) = pool.wait(1.0)
    assert done.outcome is not None and done.outcome.status == "ok", done.outcome
    assert seen == ["launching", "warming up", "measuring"]


@pytest.mark.slow
def test_without_a_terminal_the_output_is_plain_lines(tmp_path: Path) -> None:
    done = subprocess.run(
        COMMAND, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    assert ESCAPE not in done.stdout and "trials done" not in done.stdout
    trial_lines = [line for line in done.stdout.splitlines() if "] trial " in line]
    assert len(trial_lines) >= 4


def run_in_a_terminal(cwd: Path) -> str:
    """What the study writes to a pseudo-terminal, until it exits."""
    master, slave = pty.openpty()
    process = subprocess.Popen(COMMAND, cwd=cwd, env=env(), stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    assert process.wait(timeout=60) == 0
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_on_a_terminal_the_live_display_is_shown(tmp_path: Path) -> None:
    out = run_in_a_terminal(tmp_path)
    assert ESCAPE in out, "the display redraws itself"
    assert "0/4 trials done" in out and "ETA" in out
    assert "best so far (simulated): max output throughput" in out
    assert "] trial   0  simulated  max output throughput" in out, "trial lines still print"
    assert "Pareto front:" in out

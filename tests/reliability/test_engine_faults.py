"""Engine faults through the emulator: each ends PRUNED-worthy with the right crash class.

LocalRunner starts `python -m runners.sim.serve` with the engine's own flags, in its own process
group. Every case checks the crash class and phase, that a start failure is classified when the
process exits (not when the deadline passes), that no process of the group it started is left,
and that the port is free. Already covered in tests/runners/test_emulator_runner.py and not
repeated here: one start crash (invalid:config), death under load (oom:runtime), hang at start
(start:timeout), hang mid-benchmark (load:timeout), and teardown after success.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runners.local import EmulatorLaunch, LocalRunner, RealRunSettings
from runners.process import group_pids, port_is_free
from runners.types import (
    Candidate,
    CrashClass,
    NodeGroup,
    Placement,
    TrialOutcome,
    Workload,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

NODE = NodeGroup("h100", "H100-SXM-80GB", 8)
PLACEMENT = Placement(NODE, tuple(range(8)))
SMALL = Workload("w", "random", 8, input_len=64, output_len=8)
DEADLINE_S = 120.0

BIG = ("Qwen3-235B-A22B", "Qwen/Qwen3-235B-A22B-Instruct-2507")
MOE = ("Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B")

# one configuration per class of crash at start, with a fragment of the engine's own error text
START_CRASHES: list[tuple[tuple[str, str], dict[str, Any], CrashClass, str]] = [
    (BIG, {"tensor-parallel-size": 4}, CrashClass.WEIGHTS_OOM, "CUDA out of memory"),
    (
        BIG,
        {"tensor-parallel-size": 8, "gpu-memory-utilization": 0.66},
        CrashClass.NO_KV_MEMORY,
        "No available memory for the cache blocks",
    ),
    (
        BIG,
        {"tensor-parallel-size": 8, "gpu-memory-utilization": 0.72, "max-model-len": 32768},
        CrashClass.KV_TOO_SMALL,
        "To serve at least one request",
    ),
    (MOE, {"tensor-parallel-size": 3}, CrashClass.TP_HEADS, "must be divisible"),
    (
        MOE,
        {"tensor-parallel-size": 8, "data-parallel-size": 2},
        CrashClass.TOO_MANY_GPUS,
        "larger than the number of available GPUs",
    ),
    (
        MOE,
        {"tensor-parallel-size": 8, "max-model-len": 10_000_000},
        CrashClass.MODEL_LEN,
        "greater than the derived max_model_len",
    ),
    (
        MOE,
        {"max-num-batched-tokens": 64, "max-num-seqs": 128},
        CrashClass.INVALID_CONFIG,
        "must be greater than or equal to max_num_seqs",
    ),
    (MOE, {"attention-backend": "NO_SUCH_BACKEND"}, CrashClass.INVALID_CONFIG, "invalid choice"),
]


@pytest.fixture
def started_groups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The process groups (leader pids) of every process the runner starts."""
    seen: list[int] = []

    class Spy(subprocess.Popen[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self.pid)

    monkeypatch.setattr(subprocess, "Popen", Spy)
    yield seen


def candidate(model: tuple[str, str], **settings: Any) -> Candidate:
    return Candidate.make("vllm", "0.33.0", model[0], model[1], "bf16", settings)


def emulator(
    tmp_path: Path,
    fault: str = "none",
    time_scale: float = 20.0,
    startup_s: float = 0.2,
    start_deadline_s: float = DEADLINE_S,
) -> LocalRunner:
    """LocalRunner on the emulator, with one of its fault modes (`--fault`)."""
    launch = EmulatorLaunch(time_scale=time_scale, startup_s=startup_s, fault=fault)
    settings = RealRunSettings(start_deadline_s=start_deadline_s, bench_timeout_s=DEADLINE_S)
    return LocalRunner(tmp_path, settings, emulator=launch, num_warmups=0)


def assert_no_orphan(outcome: TrialOutcome, groups: list[int]) -> None:
    assert outcome.launch is not None
    assert port_is_free(outcome.launch.host, outcome.launch.port)
    assert groups, "the runner started no process"
    assert [pid for pid in groups if group_pids(pid)] == []


@pytest.mark.parametrize(
    ("model", "settings", "expected", "text"),
    START_CRASHES,
    ids=[f"{case[2].value}-{i}" for i, case in enumerate(START_CRASHES)],
)
def test_each_start_crash_class(
    tmp_path: Path,
    started_groups: list[int],
    model: tuple[str, str],
    settings: dict[str, Any],
    expected: CrashClass,
    text: str,
) -> None:
    outcome = emulator(tmp_path).run(candidate(model, **settings), SMALL, PLACEMENT)
    assert outcome.status == "crashed"
    assert outcome.crash is not None
    assert (outcome.crash.crash_class, outcome.crash.phase) == (expected, "startup")
    assert text in outcome.crash.message
    # classified when the process exited, not when the start deadline passed
    assert dict(outcome.diagnostics)["startup_s"] < DEADLINE_S
    assert_no_orphan(outcome, started_groups)


@pytest.mark.parametrize("fault", ["http500", "malformed"])
def test_broken_answers_under_load_are_load_errors(
    tmp_path: Path, started_groups: list[int], fault: str
) -> None:
    config = candidate(MOE, **{"tensor-parallel-size": 8})
    outcome = emulator(tmp_path, fault).run(config, SMALL, PLACEMENT)
    assert outcome.status == "crashed"
    assert outcome.crash is not None
    assert (outcome.crash.crash_class, outcome.crash.phase) == (CrashClass.LOAD_ERROR, "load")
    assert outcome.crash.message.startswith("every request failed: ")
    if fault == "http500":
        assert "HTTP 500" in outcome.crash.message
    assert_no_orphan(outcome, started_groups)


def test_a_request_refused_as_too_long_stays_a_configuration_error(
    tmp_path: Path, started_groups: list[int]
) -> None:
    """4xx answers are the configuration's fault (here max-model-len below the workload)."""
    config = candidate(MOE, **{"tensor-parallel-size": 8, "max-model-len": 32})
    outcome = emulator(tmp_path).run(config, SMALL, PLACEMENT)
    assert outcome.crash is not None
    assert (outcome.crash.crash_class, outcome.crash.phase) == (CrashClass.INVALID_CONFIG, "load")
    assert "HTTP 400" in outcome.crash.message
    assert_no_orphan(outcome, started_groups)


def test_a_start_slower_than_the_deadline_times_out(
    tmp_path: Path, started_groups: list[int]
) -> None:
    # the emulator would be ready after 600 emulated seconds; the deadline is 2 s
    runner = emulator(tmp_path, time_scale=1.0, startup_s=600.0, start_deadline_s=2.0)
    outcome = runner.run(candidate(MOE, **{"tensor-parallel-size": 8}), SMALL, PLACEMENT)
    assert outcome.crash is not None
    assert (outcome.crash.crash_class, outcome.crash.phase) == (
        CrashClass.START_TIMEOUT,
        "startup",
    )
    assert "did not answer 200 within 2 s" in outcome.crash.message
    assert_no_orphan(outcome, started_groups)

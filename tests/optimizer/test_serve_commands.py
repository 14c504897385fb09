"""A real trial records the command it started, which works where it ran, and the plain engine
command for the target machine; the console table, report.md and the dashboard note give both,
labelled.

The trial is a real process (LocalRunner starting the engine emulator) run through the loop the
CLI uses; the recorded command is then started again, as a user would paste it, and must serve.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import optuna
import pytest

from optimizer.notes import read_note
from optimizer.record import read
from optimizer.report.build import write_report
from optimizer.report.pareto import format_pareto, pareto_points
from runners.launch import launch_command
from runners.process import PortLease, group_pids
from runners.types import LaunchSpec
from tests.optimizer.emulated_study import Emulated, emulated_study

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

SPACE = """
name: commands
model: {name: Qwen3-8B, variants: {bf16: Qwen/Qwen3-8B}}
hardware:
  node_groups: [{name: one, gpu: H100-SXM-80GB, gpus_per_node: 1}]
workload: {name: small, dataset: random, num_prompts: 20, input_len: 32, output_len: 8}
objectives:
  throughput: {metric: output_throughput}
  latency: {metric: tpot, percentile: 99}
baseline: {engine: vllm, variant: bf16, settings: {max-num-seqs: 64}}
engines:
  vllm:
    version: "0.33.0"
    settings:
      max-num-seqs: {type: categorical, choices: [64]}
"""
ENGINE_COMMAND = "vllm serve Qwen/Qwen3-8B --max-num-seqs 64"


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Emulated:
    return emulated_study(tmp_path_factory.mktemp("commands"), SPACE, time_scale=50.0)


def test_the_record_has_both_commands(emulated: Emulated) -> None:
    study = emulated.study
    record = read(study.trials[0])
    assert record.state == optuna.trial.TrialState.COMPLETE, record.crash_message
    assert record.serve_command == ENGINE_COMMAND
    words = shlex.split(record.launch_command)
    assert words[0] == "CUDA_VISIBLE_DEVICES=0"
    # the emulator is this checkout's runners package, as in the trial
    assert words[1].startswith(f"PYTHONPATH={ROOT}")
    assert f" {shlex.quote(sys.executable)} -m runners.sim.serve " in record.launch_command
    assert "-- vllm serve Qwen/Qwen3-8B --host 127.0.0.1 --port " in record.launch_command


def test_the_recorded_command_serves_where_the_trial_ran(emulated: Emulated) -> None:
    """Paste it (with a free port): it starts the same server, which answers /health."""
    words = shlex.split(read(emulated.study.trials[0]).launch_command)
    env = dict(os.environ)
    while "=" in words[0] and not words[0].startswith("/"):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    with PortLease() as lease:
        words[words.index("--port") + 1] = str(lease.port)
        proc = subprocess.Popen(
            words,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            assert answers_health(f"http://127.0.0.1:{lease.port}/health", proc)
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
            assert group_pids(proc.pid) == []


def answers_health(url: str, proc: subprocess.Popen[bytes]) -> bool:
    for _ in range(300):
        if proc.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        time.sleep(0.1)
    return False


def test_console_report_and_note_label_which_is_which(emulated: Emulated, tmp_path: Path) -> None:
    study = emulated.study
    record = read(study.trials[0])
    console = format_pareto(pareto_points(study), emulated.spec)
    assert f"        as run: {record.launch_command}" in console
    assert f"        engine: {ENGINE_COMMAND}" in console
    assert "'engine' is the plain engine command for the target machine" in console
    markdown = write_report(study, tmp_path).markdown.read_text()
    assert f"as run: `{record.launch_command}`; engine: `{ENGINE_COMMAND}`" in markdown
    assert "'as run' is exactly what the trial started" in markdown
    note = read_note(study, study.trials[0])
    assert note is not None
    assert (
        f"As run (works in this trial's environment):\n\n```\n{record.launch_command}\n```\n\n"
        f"Engine command (for the target machine):\n\n```\n{ENGINE_COMMAND}\n```"
    ) in note


def test_a_launch_with_files_starts_in_its_trial_folder() -> None:
    spec = LaunchSpec(
        argv=("trtllm-serve", "/models/m", "--extra_llm_api_options", "extra.yaml"),
        env=(("CUDA_VISIBLE_DEVICES", "0,1"), ("NCCL_DEBUG", "WARN info")),
        files=(("extra.yaml", "enable_attention_dp: true\n"),),
    )
    assert launch_command(spec, "/studies/s/trials/t 1") == (
        "cd '/studies/s/trials/t 1' && CUDA_VISIBLE_DEVICES=0,1 NCCL_DEBUG='WARN info' "
        "trtllm-serve /models/m --extra_llm_api_options extra.yaml"
    )
    assert launch_command(spec) == launch_command(spec, "")
    assert not launch_command(spec).startswith("cd ")

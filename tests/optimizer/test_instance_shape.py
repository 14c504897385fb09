"""The instance shape a runner reports reaches the report and the dashboard note.

Regression for "1 x 1 GPUs": the report used to read `replicas` / `gpus_used` from the runner
diagnostics, which only the simulator writes, so a real engine at TP2 showed one GPU. Here a
real process (LocalRunner starting the engine emulator) runs one TP2 vLLM instance on a node
group of two GPUs, where it is not replicated, through the same loop the CLI uses.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from optimizer.notes import read_note
from optimizer.record import read
from optimizer.report.build import write_report
from optimizer.report.pareto import format_pareto, pareto_points
from tests.optimizer.emulated_study import Emulated, emulated_study

pytestmark = pytest.mark.slow

SPACE = """
name: tp2-emulated
model: {name: Qwen3-30B-A3B, variants: {bf16: Qwen/Qwen3-30B-A3B}}
hardware:
  node_groups: [{name: pair, gpu: H100-SXM-80GB, gpus_per_node: 2}]
workload: {name: small, dataset: random, num_prompts: 40, input_len: 64, output_len: 16}
objectives:
  throughput: {metric: output_throughput}
  latency: {metric: tpot, percentile: 99}
baseline: {engine: vllm, variant: bf16, settings: {tensor-parallel-size: 2}}
engines:
  vllm:
    version: "0.33.0"
    settings:
      tensor-parallel-size: {type: categorical, choices: [2]}
"""


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Emulated:
    return emulated_study(tmp_path_factory.mktemp("tp2"), SPACE)


def test_the_record_holds_the_runners_shape(emulated: Emulated) -> None:
    (trial,) = emulated.study.trials
    record = read(trial)
    assert record.state == optuna.trial.TrialState.COMPLETE, record.crash_message
    assert record.runner is not None and record.runner.name == "local"
    assert str(record.shape) == "1 x 2 GPUs"


def test_report_and_console_show_one_instance_of_two_gpus(
    emulated: Emulated, tmp_path: Path
) -> None:
    report = pareto_points(emulated.study)
    assert [p.placement for p in report.points] == ["1 x 2 GPUs"]
    assert "1 x 2 GPUs" in format_pareto(report, emulated.spec)
    files = write_report(emulated.study, tmp_path)
    assert "| 1 x 2 GPUs |" in files.markdown.read_text()


def test_dashboard_note_shows_one_instance_of_two_gpus(emulated: Emulated) -> None:
    (trial,) = emulated.study.trials
    note = read_note(emulated.study, trial)
    assert note is not None and "runner `local`; 1 x 2 GPUs" in note

"""The ask/tell driver with a scripted runner: states, attributes, baseline, resume, interrupt."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
from optuna.trial import TrialState

from optimizer.config import StudyConfig
from optimizer.loop import run_study
from optimizer.spec.models import StudySpec
from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    Distribution,
    Metrics,
    Placement,
    TrialOutcome,
    Workload,
)


def metrics(throughput: float, p99_tpot_ms: float) -> Metrics:
    flat = Distribution(p99_tpot_ms, p99_tpot_ms, 0.0, p99_tpot_ms, p99_tpot_ms, p99_tpot_ms)
    return Metrics(
        completed=10,
        failed=0,
        duration_s=1.0,
        total_input_tokens=100,
        total_output_tokens=int(throughput),
        request_throughput_req_s=10.0,
        output_throughput_tok_s=throughput,
        total_token_throughput_tok_s=throughput + 100,
        num_gpus=8,
        ttft_ms=flat,
        tpot_ms=flat,
        itl_ms=flat,
        e2el_ms=flat,
    )


class ScriptedRunner:
    """Crashes every FP8 candidate; otherwise more sequences = more throughput, more latency."""

    def __init__(self, interrupt_on_call: int | None = None, sigterm: bool = False) -> None:
        self.calls: list[Candidate] = []
        self.interrupt_on_call = interrupt_on_call
        self.sigterm = sigterm

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        self.calls.append(candidate)
        if self.interrupt_on_call == len(self.calls):
            if self.sigterm:
                os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler stops the driver
            raise KeyboardInterrupt
        settings = candidate.settings_dict()
        if candidate.weight_dtype == "fp8":
            crash = Crash(CrashClass.WEIGHTS_OOM, "CUDA out of memory")
            return TrialOutcome("crashed", crash=crash)
        seqs = float(settings.get("max-num-seqs", settings.get("max-running-requests", 100)))
        return TrialOutcome("ok", metrics=metrics(1000 + seqs, 10 + seqs / 10))


def config(spec: StudySpec, tmp_path: Path, n_trials: int) -> StudyConfig:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    return StudyConfig.of(
        spec,
        storage=url,
        study_name="t",
        n_trials=n_trials,
        sampler="random",
        seed=1,
        quiet=True,
        preflight=False,
    )


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'study.db'}")


def test_states_and_attributes(tmp_path: Path, spec: StudySpec) -> None:
    assert run_study(config(spec, tmp_path, 25), ScriptedRunner()) == 0
    trials = load(tmp_path).trials
    assert len(trials) == 25
    baseline = trials[0]
    assert baseline.user_attrs["baseline"] is True
    assert baseline.state == TrialState.COMPLETE
    assert baseline.user_attrs["serve_command"] == (
        "vllm serve Qwen/Qwen3-235B-A22B-Instruct-2507 --tensor-parallel-size 8"
    )
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "the scripted runner crashes every FP8 candidate"
    for trial in pruned:
        assert trial.user_attrs["crash_class"] == "oom:weights"
        assert trial.user_attrs["crash_message"] == "CUDA out of memory"
        assert trial.values is None
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            assert trial.values is not None and len(trial.values) == 2
            assert trial.user_attrs["output_throughput_tok_s"] == trial.values[0]
            assert trial.user_attrs["p99_tpot_ms"] == trial.values[1]


def test_resume_adds_exactly_the_missing_trials(tmp_path: Path, spec: StudySpec) -> None:
    first = ScriptedRunner()
    run_study(config(spec, tmp_path, 10), first)
    second = ScriptedRunner()
    run_study(config(spec, tmp_path, 16), second)
    assert len(first.calls) == 10 and len(second.calls) == 6
    trials = load(tmp_path).trials
    assert len(trials) == 16
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    third = ScriptedRunner()
    run_study(config(spec, tmp_path, 16), third)
    assert third.calls == [], "a finished study reruns nothing"


def test_interrupt_fails_the_running_trial_and_resume_completes(
    tmp_path: Path, spec: StudySpec
) -> None:
    assert run_study(config(spec, tmp_path, 8), ScriptedRunner(interrupt_on_call=3)) == 130
    trials = [t for t in load(tmp_path).trials if t.state != TrialState.WAITING]
    assert len(trials) == 3, "queued anchors stay queued; three trials were started"
    assert trials[2].state == TrialState.FAIL, "the interrupted trial is failed, not left RUNNING"
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials[:2])
    run_study(config(spec, tmp_path, 8), ScriptedRunner())
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    assert sum(t.state in finished for t in load(tmp_path).trials) == 8
    assert_retried(load(tmp_path), interrupted=trials[2])


def assert_retried(study: optuna.Study, interrupted: optuna.trial.FrozenTrial) -> None:
    """The interrupted configuration ran again, with its marks (an anchor stays an anchor)."""
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == interrupted.number]
    assert len(retries) == 1, "the interrupted trial is retried once"
    retry = retries[0]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.params == interrupted.params
    assert retry.user_attrs.get("anchor") == interrupted.user_attrs.get("anchor") is not None


def test_sigterm_fails_the_running_trial_at_once_and_resume_retries_it(
    tmp_path: Path, spec: StudySpec
) -> None:
    runner = ScriptedRunner(interrupt_on_call=3, sigterm=True)
    assert run_study(config(spec, tmp_path, 8), runner) == 143
    trials = [t for t in load(tmp_path).trials if t.state != TrialState.WAITING]
    assert [t.state for t in trials].count(TrialState.RUNNING) == 0
    assert trials[2].state == TrialState.FAIL
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the handler is put back"
    run_study(config(spec, tmp_path, 8), ScriptedRunner())
    assert_retried(load(tmp_path), interrupted=trials[2])


def test_pareto_front_excludes_crashes(tmp_path: Path, spec: StudySpec) -> None:
    run_study(config(spec, tmp_path, 20), ScriptedRunner())
    study = load(tmp_path)
    assert study.best_trials
    assert all(t.state == TrialState.COMPLETE for t in study.best_trials)
    assert study.metric_names == ["output throughput (tok/s)", "p99 TPOT (ms)"]

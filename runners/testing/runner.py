"""Conformance suite for any `runners.Runner`: subclass `RunnerConformance` in a test module.

The contract it checks: a feasible candidate completes with metrics in `vllm bench serve` units
and a positive duration, and the outcome says how many instances of how many GPUs served it; a
configuration the engine refuses comes back as a `Crash` with a class, a message and a phase,
never as an exception; an instance spanning two nodes is served as one instance (a
process-based runner starts one process per node and stops them all); every artifact the
outcome names exists; a process-based runner leaves no process of the groups it started and no
bound port behind; a runner that loads weights
reports a local checkpoint missing on its node as ``setup:model_missing`` without starting
anything; a workload with a `LoadSearch` comes back with its load curve (the unbounded load
first, every probe judged by the SLOs, the trial's metrics those of the knee), and further
workloads (`Workload.also`) come back one `WorkloadRun` each, measured on the same engine start.

    class TestMyRunner(RunnerConformance):
        process_based = True

        def make_runner(self, tmp_path: Path) -> Runner:
            return MyRunner(tmp_path)

Override `feasible`, `refused`, `workload` or `placement` when the runner needs other
candidates (the defaults are a small vLLM model on one node of 8 x H100).
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest

from runners import Runner
from runners.process import group_pids, port_is_free
from runners.types import (
    Candidate,
    CrashClass,
    LoadSearch,
    NodeGroup,
    NodeSlot,
    Placement,
    SettingValue,
    SloLimit,
    TrialOutcome,
    Workload,
)

VLLM_BENCH_KEYS = (
    "completed",
    "duration_s",
    "request_throughput_req_s",
    "output_throughput_tok_s",
    "total_token_throughput_tok_s",
    *(f"{stat}_{name}_ms" for name in ("ttft", "tpot", "itl", "e2el") for stat in ("mean", "p99")),
)


def _qwen3_30b(settings: dict[str, SettingValue]) -> Candidate:
    return Candidate.make(
        "vllm", "0.33.0", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", settings
    )


class RunnerConformance:
    """The contract of a `Runner`; pytest collects it through a ``Test...`` subclass."""

    process_based: ClassVar[bool] = False
    """The runner starts processes (engines): check that none is left and ports are free."""
    checks_model_paths: ClassVar[bool] = False
    """The runner loads weights from `checkpoint`: a missing local path is a setup crash."""

    def make_runner(self, tmp_path: Path) -> Runner:
        raise NotImplementedError("a RunnerConformance subclass must implement make_runner")

    def placement(self) -> Placement:
        return Placement(NodeGroup("h100", "H100-SXM-80GB", 8), tuple(range(8)))

    def feasible(self) -> Candidate:
        """A candidate the engine starts and serves the workload with."""
        return _qwen3_30b({"tensor-parallel-size": 8})

    def refused(self) -> Candidate:
        """A candidate the engine refuses at start (its own argument check)."""
        return _qwen3_30b({"max-num-batched-tokens": 64, "max-num-seqs": 128})

    def workload(self) -> Workload:
        return Workload("conformance", "random", 24, input_len=64, output_len=12)

    def spanning_placement(self) -> Placement:
        """Two nodes of 8 x H100 joined by 50 GB/s per GPU, all reached on this machine."""
        group = NodeGroup("h100x2", "H100-SXM-80GB", 8, 2, 50.0)
        ids = tuple(range(8))
        return Placement(group, ids, others=(NodeSlot("127.0.0.1", ids),))

    def spanning(self) -> Candidate:
        """A candidate whose one instance spans both nodes (TP8 x PP2)."""
        return _qwen3_30b({"tensor-parallel-size": 8, "pipeline-parallel-size": 2})

    # --- fixtures -----------------------------------------------------------------------------

    @pytest.fixture
    def runner(self, tmp_path: Path) -> Runner:
        return self.make_runner(tmp_path)

    @pytest.fixture
    def started_groups(self, monkeypatch: pytest.MonkeyPatch) -> list[int]:
        """Process-group leaders started through subprocess.Popen (engines start in a session of
        their own; helpers such as the load generator's send clock stay in the caller's)."""
        seen: list[int] = []
        original = subprocess.Popen

        class Spy(original):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                if kwargs.get("start_new_session"):
                    seen.append(self.pid)

        monkeypatch.setattr(subprocess, "Popen", Spy)
        return seen

    # --- the contract -------------------------------------------------------------------------

    def test_a_feasible_candidate_completes_with_vllm_bench_metrics(
        self, runner: Runner, started_groups: list[int]
    ) -> None:
        workload = self.workload()
        outcome = runner.run(self.feasible(), workload, self.placement())
        assert outcome.status == "ok", outcome.crash
        assert outcome.crash is None
        metrics = outcome.metrics
        assert metrics is not None
        assert metrics.completed + metrics.failed == workload.num_prompts
        assert metrics.completed > 0
        assert metrics.duration_s > 0 and math.isfinite(metrics.duration_s)
        # vllm bench serve's formulas and units: tokens and requests per second, latencies in ms
        assert math.isclose(
            metrics.output_throughput_tok_s, metrics.total_output_tokens / metrics.duration_s
        )
        assert math.isclose(
            metrics.request_throughput_req_s, metrics.completed / metrics.duration_s
        )
        assert math.isclose(
            metrics.total_token_throughput_tok_s,
            (metrics.total_input_tokens + metrics.total_output_tokens) / metrics.duration_s,
        )
        for name in ("ttft", "tpot", "itl", "e2el"):
            dist = metrics.latency(name)
            assert 0 <= dist.median <= dist.p90 <= dist.p95 <= dist.p99, name
        assert metrics.ttft_ms.mean <= metrics.e2el_ms.mean
        assert metrics.e2el_ms.p99 <= metrics.duration_s * 1000.0 * (1 + 1e-9)
        assert set(VLLM_BENCH_KEYS) <= set(metrics.flat())
        assert 0 < metrics.num_gpus <= len(self.placement().gpu_ids)
        self._check_after(outcome, started_groups)

    def test_the_outcome_reports_the_instances_that_served(self, runner: Runner) -> None:
        placement = self.placement()
        outcome = runner.run(self.feasible(), self.workload(), placement)
        assert outcome.status == "ok", outcome.crash
        assert outcome.replicas >= 1
        assert outcome.gpus_per_replica >= 1
        assert outcome.replicas * outcome.gpus_per_replica <= len(placement.gpu_ids)

    def test_an_instance_spanning_nodes_completes_as_one_instance(
        self, runner: Runner, started_groups: list[int]
    ) -> None:
        placement = self.spanning_placement()
        outcome = runner.run(self.spanning(), self.workload(), placement)
        assert outcome.status == "ok", outcome.crash
        assert outcome.metrics is not None and outcome.metrics.completed > 0
        assert (outcome.replicas, outcome.gpus_per_replica) == (1, placement.gpu_count)
        if self.process_based:
            assert len(started_groups) >= len(placement.nodes), "one process per node"
        self._check_after(outcome, started_groups)

    def test_a_refused_configuration_is_a_crash_not_an_exception(
        self, runner: Runner, started_groups: list[int]
    ) -> None:
        outcome = runner.run(self.refused(), self.workload(), self.placement())
        assert outcome.status == "crashed"
        assert outcome.metrics is None
        crash = outcome.crash
        assert crash is not None
        assert isinstance(crash.crash_class, CrashClass)
        assert crash.phase == "startup"
        assert crash.message.strip(), "the crash carries the engine's error text"
        self._check_after(outcome, started_groups)

    def test_a_missing_local_model_is_a_setup_crash(
        self, runner: Runner, tmp_path: Path, started_groups: list[int]
    ) -> None:
        if not self.checks_model_paths:
            pytest.skip("this runner loads no weights")
        missing = str(tmp_path / "no-such-model")
        base = self.feasible()
        candidate = Candidate(
            base.engine,
            base.engine_version,
            base.model,
            missing,
            base.weight_dtype,
            base.settings,
        )
        outcome = runner.run(candidate, self.workload(), self.placement())
        assert outcome.crash is not None
        assert outcome.crash.crash_class == CrashClass.MODEL_MISSING
        assert missing in outcome.crash.message
        assert started_groups == [], "nothing is started for a model that is not there"

    def test_a_load_search_reports_every_probe_and_the_knee(
        self, runner: Runner, started_groups: list[int]
    ) -> None:
        workload = self.workload()
        plain = runner.run(self.feasible(), workload, self.placement())
        assert plain.status == "ok" and plain.metrics is not None, plain.crash
        starts = len(started_groups)
        # half the unbounded run's p99 TTFT: broken there, so the search has to look lower
        slo = SloLimit("p99_ttft_ms", max=plain.metrics.ttft_ms.p99 / 2)
        search = LoadSearch((slo,), start=None, max_probes=4)
        searched = dataclasses.replace(workload, load_search=search)
        outcome = runner.run(self.feasible(), searched, self.placement())
        assert outcome.status == "ok", outcome.crash
        [run] = outcome.workloads
        assert run.name == workload.name and run.curve is not None
        probes = run.curve.probes
        assert probes[0].load == math.inf and not probes[0].held
        assert 1 < len(probes) <= search.max_probes
        assert len({p.load for p in probes}) == len(probes)
        for probe in probes:
            assert probe.metrics.completed + probe.metrics.failed == workload.num_prompts
            assert probe.broken == (() if slo.holds(probe.metrics) else (slo.name,))
        chosen = run.curve.knee or run.curve.lowest
        assert outcome.metrics == chosen.metrics == run.metrics
        if self.process_based:
            assert len(started_groups) == 2 * starts, "one engine start for the whole search"
        self._check_after(outcome, started_groups)

    def test_further_workloads_are_measured_on_the_same_start(
        self, runner: Runner, started_groups: list[int]
    ) -> None:
        workload = self.workload()
        plain = runner.run(self.feasible(), workload, self.placement())
        starts = len(started_groups)
        half = workload.num_prompts // 2
        second = dataclasses.replace(workload, name="second", num_prompts=half)
        outcome = runner.run(
            self.feasible(), dataclasses.replace(workload, also=(second,)), self.placement()
        )
        assert plain.status == outcome.status == "ok", outcome.crash
        assert [r.name for r in outcome.workloads] == [workload.name, "second"]
        first, other = outcome.workloads
        assert outcome.metrics == first.metrics
        assert other.metrics.completed + other.metrics.failed == second.num_prompts
        assert first.curve is None and other.curve is None
        if self.process_based:
            assert len(started_groups) == 2 * starts, "one engine start for both workloads"
        self._check_after(outcome, started_groups)

    def _check_after(self, outcome: TrialOutcome, started_groups: list[int]) -> None:
        """Every named artifact exists; a process-based runner left nothing running."""
        for name, path in outcome.artifacts:
            assert Path(path).exists(), f"artifact {name} is named but missing: {path}"
        bench = dict(outcome.artifacts).get("benchmark_json")
        if bench is not None and outcome.metrics is not None:
            document = json.loads(Path(bench).read_text())
            assert document["completed"] == outcome.metrics.completed
            assert math.isclose(
                document["output_throughput"], outcome.metrics.output_throughput_tok_s
            )
        if not self.process_based:
            return
        assert started_groups, "a process-based runner started no process"
        assert [pid for pid in started_groups if group_pids(pid)] == []
        assert outcome.launch is not None
        assert port_is_free(outcome.launch.host, outcome.launch.port)

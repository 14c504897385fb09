"""An empty front under the SLOs is explained (binding SLO, closest trial and by how much, the
load that would meet them); degenerate workloads are warned about at start and in the report;
a study of several workloads stores and reports each; the dashboard's study note says the pick."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import optuna
from optuna_dashboard._note import get_note_from_system_attrs

from optimizer.cli import main
from optimizer.config import StudyConfig
from optimizer.degenerate import workload_warnings
from optimizer.loop import run_study
from optimizer.record import read_all
from optimizer.report.build import write_report
from optimizer.slo_gap import RESCUE_ATTR, slo_gap
from optimizer.spec.load import load_spec
from runners.sim.runner import SimRunner

Write = Callable[[dict[str, object]], Path]


def small(shipped: dict[str, object], **changes: object) -> dict[str, object]:
    space = {**shipped, "name": "gap", **changes}
    space["engines"] = {"vllm": dict(shipped["engines"])["vllm"]}  # type: ignore[call-overload]
    if "workloads" not in changes and "workload" not in changes:
        space["workload"] = {**dict(shipped["workload"]), "num_prompts": 300}  # type: ignore[call-overload]
    return space


def run(space: Path, tmp_path: Path, n_trials: int = 6) -> tuple[optuna.Study, str]:
    url = f"sqlite:///{tmp_path / 'gap.db'}"
    out = io.StringIO()
    with redirect_stdout(out):
        assert run_study(StudyConfig.of(load_spec(space), storage=url, n_trials=n_trials),
                         SimRunner()) == 0  # fmt: skip
    return optuna.load_study(study_name="gap", storage=url), out.getvalue()


def test_an_empty_front_names_the_binding_slo_the_closest_trial_and_a_load_that_holds(
    shipped_space: dict[str, object], write_space: Write, tmp_path: Path
) -> None:
    objectives = {**dict(shipped_space["objectives"]),  # type: ignore[call-overload]
                  "slos": [{"metric": "p99_ttft_ms", "max": 2000}]}  # fmt: skip
    study, printed = run(write_space(small(shipped_space, objectives=objectives)), tmp_path)
    gap = slo_gap(study)
    assert gap is not None
    completed = [r for r in read_all(study) if r.metrics]
    assert gap.binding.slo == "p99_ttft_ms <= 2000"
    assert gap.broken_by["p99_ttft_ms <= 2000"] == len(completed)
    closest = min(completed, key=lambda r: r.metrics["p99_ttft_ms"])  # type: ignore[index]
    assert gap.closest.number == closest.number
    assert gap.binding.value == closest.metrics["p99_ttft_ms"]  # type: ignore[index]
    rescue = study.user_attrs[RESCUE_ATTR]
    assert rescue["trial"] == closest.number and gap.holds_at == rescue["knee"]
    assert gap.holds_at is not None and gap.holds_at > 0
    assert "No trial meets every SLO. The binding one is p99_ttft_ms <= 2000" in printed
    assert f"Closest: trial {closest.number}, p99_ttft_ms" in printed
    assert f"At a request rate of {gap.holds_at:,.2f} req/s (Poisson)" in printed
    md = write_report(study, tmp_path / "report").markdown.read_text()
    assert "No trial meets every SLO." in md and "Recommended" in md


def test_degenerate_workloads_are_warned_about(
    shipped_space: dict[str, object], write_space: Write
) -> None:
    one_token = {"name": "w", "dataset": "random", "num_prompts": 50, "input_len": 64,
                 "output_len": 1}  # fmt: skip
    objectives = {**dict(shipped_space["objectives"]),  # type: ignore[call-overload]
                  "slos": [{"metric": "p99_ttft_ms", "max": 2000}]}  # fmt: skip
    spec = load_spec(write_space(small(shipped_space, workload=one_token, objectives=objectives)))
    found = "\n".join(workload_warnings(spec))
    assert "every output is 1 token, so tpot is 0 for every trial" in found
    assert "all 50 requests are sent at once, so p99_ttft_ms <= 2000" in found
    assert "50 requests; a p99 over fewer than 100" in found
    assert "prefix caching is searched (vllm.enable-prefix-caching)" in found
    shared = {"name": "w", "dataset": "sharegpt-like", "num_prompts": 200, "prefix_len": 500,
              "prefix_groups": 4, "request_rate": 10}  # fmt: skip
    assert workload_warnings(load_spec(write_space(small(shipped_space, workload=shared)))) == []


def test_the_study_command_prints_the_warnings_and_the_report_repeats_them(
    shipped_space: dict[str, object], write_space: Write, tmp_path: Path
) -> None:
    space = write_space(small(shipped_space))
    url = f"sqlite:///{tmp_path / 'w.db'}"
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        assert main(["--space", str(space), "--storage", url, "--n-trials", "3", "--quiet"]) == 0
    assert "warning: no request shares a prompt prefix" in err.getvalue()
    study = optuna.load_study(study_name="gap", storage=url)
    md = write_report(study, tmp_path / "r").markdown.read_text()
    assert "### Workload warnings" in md and "no request shares a prompt prefix" in md
    attrs = study._storage.get_study_system_attrs(study._study_id)
    note = get_note_from_system_attrs(attrs, None)["body"]
    assert note.startswith("**Simulated**"), "the note says first where its numbers come from"
    assert "\n## Recommended configuration" in note
    assert "It meets every SLO" in note


def test_several_workloads_are_stored_and_reported_each(
    shipped_space: dict[str, object], write_space: Write, tmp_path: Path
) -> None:
    workloads = [
        {"name": "chat", "dataset": "sharegpt-like", "num_prompts": 200, "weight": 2},
        {"name": "short", "dataset": "random", "num_prompts": 100, "input_len": 128,
         "output_len": 64},
    ]  # fmt: skip
    space = small({k: v for k, v in shipped_space.items() if k != "workload"},
                  workloads=workloads)  # fmt: skip
    study, _ = run(write_space(space), tmp_path, n_trials=4)
    for record in read_all(study):
        if record.values is None:
            continue
        chat, short = record.workload_runs
        assert (chat.name, chat.weight, short.name) == ("chat", 2.0, "short")
        mean = (2 * chat.throughput + short.throughput) / 3
        assert abs(record.throughput - mean) < 1e-6 * mean
        assert record.metrics is not None
        assert record.metrics["completed"] == chat.metrics["completed"]
    md = write_report(study, tmp_path / "r").markdown.read_text()
    assert "### Per workload: baseline vs recommended" in md
    assert "| chat | 2 |" in md and "| short | 1 |" in md

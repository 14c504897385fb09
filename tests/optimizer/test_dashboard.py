"""Notes and artifacts that the driver attaches to each trial for optuna-dashboard."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta
from optuna.trial import TrialState
from optuna_dashboard._note import get_note_from_system_attrs

from optimizer.notes import backfill_notes
from optimizer.record import study_dir_of
from runners.bench.results import metrics_from_vllm_json
from tests.optimizer.report_study import study_in


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    return study_in(tmp_path_factory, "dash", n_trials=8)[0]


def note(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return str(get_note_from_system_attrs(attrs, trial._trial_id)["body"])


def test_every_finished_trial_has_a_note(study: optuna.Study) -> None:
    for trial in study.trials:
        body = note(study, trial)
        assert trial.user_attrs["serve_command"] in body
        if trial.state == TrialState.COMPLETE:
            assert "output throughput" in body and "p99 TPOT" in body
        else:
            assert f"`{trial.user_attrs['crash_class']}`" in body
    assert "**baseline**" in note(study, study.trials[0])


def test_completed_trials_carry_benchmark_json_and_log(
    study: optuna.Study, tmp_path: Path
) -> None:
    store = FileSystemArtifactStore(str(study_dir_of(study) / "artifacts"))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    for trial in complete:
        metas = {m.filename: m for m in get_all_artifact_meta(trial, storage=study._storage)}
        bench = metas["bench-simulated.json"]
        log = metas[f"trial-{trial.number}-engine-log-tail.txt"]
        path = tmp_path / f"{trial.number}.json"
        download_artifact(artifact_store=store, file_path=str(path), artifact_id=bench.artifact_id)
        assert json.loads(path.read_text())["simulated"] is True
        metrics = metrics_from_vllm_json(path, num_gpus=8)
        assert metrics.output_throughput_tok_s == pytest.approx(trial.values[0])
        text_path = tmp_path / f"{trial.number}.txt"
        download_artifact(
            artifact_store=store, file_path=str(text_path), artifact_id=log.artifact_id
        )
        text = text_path.read_text()
        assert text.startswith("# SIMULATED engine log")
        assert "GPU KV cache size:" in text


def test_backfill_adds_notes_only_where_missing(study: optuna.Study) -> None:
    assert backfill_notes(study) == 0
    fresh = optuna.create_study(
        storage=study._storage, study_name="older", directions=["maximize", "minimize"]
    )
    fresh.add_trial(
        optuna.trial.create_trial(
            values=[1.0, 2.0], user_attrs={"serve_command": "vllm serve m", "engine": "vllm"}
        )
    )
    assert backfill_notes(fresh) == 1
    assert "vllm serve m" in note(fresh, fresh.trials[0])
    assert backfill_notes(fresh) == 0

"""SLOs are constraints: recorded both ways, infeasible trials kept out of the front and shown as
infeasible by optuna-dashboard 0.21 (which reads only the legacy `constraints` list)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from optuna_dashboard import wsgi

from optimizer.config import StudyConfig
from optimizer.errors import SpecError
from optimizer.loop import run_study
from optimizer.objectives import constraint_values
from optimizer.report.pareto import format_pareto, pareto_points
from optimizer.spec.load import load_spec
from runners.sim.runner import SimRunner
from tests.conftest import SHIPPED
from tests.optimizer.test_driver import metrics

Writer = Callable[[dict[str, Any]], Path]
SLO_MS = 20_000.0


@pytest.fixture(scope="module")
def slo_study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    folder = tmp_path_factory.mktemp("slo")
    content = yaml.safe_load(SHIPPED.read_text())
    content["objectives"]["slos"] = [{"metric": "p99_ttft_ms", "max": SLO_MS}]
    (folder / "slo.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    spec = load_spec(folder / "slo.yaml")
    url = f"sqlite:///{folder / 'slo.db'}"
    config = StudyConfig.of(
        spec, storage=url, study_name="slo", n_trials=20, sampler="random", seed=3, quiet=True
    )
    assert run_study(config, SimRunner()) == 0
    return optuna.load_study(study_name="slo", storage=url)


def test_constraint_values_follow_optuna_sign_convention() -> None:
    spec_slos = load_spec("qwen3-moe.yaml").objectives.slos
    assert spec_slos == []
    from optimizer.spec.models import Slo

    m = metrics(throughput=4000.0, p99_tpot_ms=100.0)
    values = constraint_values(
        m, [Slo(metric="p99_tpot_ms", max=150.0), Slo(metric="output_throughput_tok_s", min=5000)]
    )
    assert values == {"p99_tpot_ms <= 150": -50.0, "output_throughput_tok_s >= 5000": 1000.0}


def test_slo_is_recorded_both_ways_and_front_is_feasible(slo_study: optuna.Study) -> None:
    complete = [t for t in slo_study.trials if t.state == TrialState.COMPLETE]
    assert complete
    for trial in complete:
        legacy = trial.system_attrs["constraints"]
        assert legacy == [trial.system_attrs["constraints:p99_ttft_ms <= 20000"]]
        assert legacy[0] == pytest.approx(trial.user_attrs["p99_ttft_ms"] - SLO_MS)
    infeasible = [t for t in complete if t.system_attrs["constraints"][0] > 0]
    assert infeasible, "this space has configurations whose p99 TTFT breaks 20 s"
    front = slo_study.best_trials
    assert front
    assert all(t.user_attrs["p99_ttft_ms"] <= SLO_MS for t in front)
    report = format_pareto(pareto_points(slo_study), load_spec("qwen3-moe.yaml"))
    for trial in infeasible:
        assert f"\n{trial.number:>5} " not in report and f"\n{trial.number:>5}*" not in report


def test_dashboard_serves_infeasible_trials_as_infeasible(slo_study: optuna.Study) -> None:
    app = wsgi(slo_study._storage)
    study_id = slo_study._study_id
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/api/studies/{study_id}",
        "QUERY_STRING": "after=0",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
    }
    status: list[str] = []

    def start_response(code: str, headers: object, exc_info: object = None) -> None:
        status.append(code)

    body = b"".join(app(environ, start_response))
    assert status[0].startswith("200"), status
    trials = {t["number"]: t for t in json.loads(body)["trials"]}
    for trial in slo_study.trials:
        if trial.state != TrialState.COMPLETE:
            continue
        served = trials[trial.number]["constraints"]
        assert served == trial.system_attrs["constraints"]
        assert (served[0] > 0) == (trial.user_attrs["p99_ttft_ms"] > SLO_MS)


def test_unknown_slo_metric_is_a_spec_error(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    shipped_space["objectives"]["slos"] = [{"metric": "p99_ttf_ms", "max": 1.0}]
    with pytest.raises(SpecError, match="did you mean 'p99_ttft_ms'"):
        load_spec(write_space(shipped_space))


def test_slo_needs_exactly_one_bound(write_space: Writer, shipped_space: dict[str, Any]) -> None:
    shipped_space["objectives"]["slos"] = [{"metric": "p99_ttft_ms"}]
    with pytest.raises(SpecError, match="give exactly one of max or min"):
        load_spec(write_space(shipped_space))

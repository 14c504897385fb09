"""Pre-flight uses the model's limit before the first crash: a max-model-len above the model's
max_position_embeddings is never launched (vLLM would refuse it at start, on GPUs and on the CPU
device alike); it is recorded as ``rejected:max_model_len`` with vLLM's own text."""

from __future__ import annotations

from pathlib import Path

import optuna

from optimizer.config import StudyConfig
from optimizer.constraints import violations
from optimizer.feasibility import FeasibilityChecker
from optimizer.loop import run_study
from optimizer.space import candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.engines import resolve_candidate
from runners.sim.runner import SimRunner
from runners.types import Candidate, Placement, TrialOutcome, Workload


class Recording:
    """The simulator, remembering every candidate that reached it."""

    def __init__(self) -> None:
        self.launched: list[Candidate] = []
        self.inner = SimRunner()

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        self.launched.append(candidate)
        return self.inner.run(candidate, workload, placement)


def test_a_tiny_cpu_study_never_launches_a_context_above_the_models_limit(tmp_path: Path) -> None:
    spec = load_spec("tiny-qwen3-moe-cpu.yaml")
    url = f"sqlite:///{tmp_path / 'tiny.db'}"
    runner = Recording()
    config = StudyConfig.of(
        spec, storage=url, study_name="tiny", n_trials=12, sampler="tpe", seed=0, quiet=True
    )
    assert run_study(config, runner) == 0
    lengths = [dict(c.settings).get("max-model-len") for c in runner.launched]
    assert len(lengths) == 12 and 8192 not in lengths
    study = optuna.load_study(study_name="tiny", storage=url)
    refused = [
        t for t in study.trials if t.user_attrs.get("crash_class") == "rejected:max_model_len"
    ]
    assert refused, "the sampler proposed 8192 and pre-flight refused it"
    assert all(t.params["vllm.max-model-len"] == 8192 for t in refused)
    assert "User-specified max_model_len (8192) is greater than the derived" in str(
        refused[0].user_attrs.get("crash_message", "")
    )


def test_the_first_such_candidate_is_refused_with_no_history() -> None:
    tiny = load_spec("tiny-qwen3-moe-cpu.yaml")
    params: dict[str, object] = {
        "engine": "vllm",
        "model_variant": "bf16",
        "vllm.VLLM_CPU_KVCACHE_SPACE": 1,
        "vllm.max-model-len": 8192,
        "vllm.max-num-seqs": 128,
        "vllm.enable-chunked-prefill": True,
        "vllm.max-num-batched-tokens[0]": 2048,
        "vllm.enable-prefix-caching": True,
        "vllm.enforce-eager": False,
        "vllm.dtype": "auto",
    }
    candidate = candidate_from_params(tiny, params)  # type: ignore[arg-type]
    resolved = resolve_candidate(candidate, tiny.node_group)
    verdict = FeasibilityChecker(tiny).check(resolved, params, {}, [])
    assert (verdict.launch, verdict.crash_class) == (False, "rejected:max_model_len")


def test_on_a_gpu_the_rule_is_the_same(spec: StudySpec) -> None:
    model, checkpoint = "Qwen3-235B-A22B-Instruct-2507", "Qwen/Qwen3-235B-A22B-Instruct-2507"
    settings = {"tensor-parallel-size": 8, "max-model-len": 300000}
    candidate = Candidate.make("vllm", "0.33.0", model, checkpoint, "bf16", settings)
    assert [v.rule for v in violations(spec, candidate)] == ["max_model_len"]
    sglang = Candidate.make(
        "sglang", "0.5.23", model, checkpoint, "bf16", {"tp-size": 8, "context-length": 300000}
    )
    (found,) = violations(spec, sglang)
    assert found.rule == "max_model_len"
    assert found.message.startswith("ValueError: User-specified context_length (300000)")

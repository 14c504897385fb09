"""Pre-flight: static rules and the memory model reject sure crashes; the learned model learns."""

from __future__ import annotations

from collections.abc import Mapping

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from optimizer.feasibility import (
    FeasibilityChecker,
    adaptive_threshold,
    learned_verdict,
)
from optimizer.space import candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.engines import resolve_candidate


def vllm_params(**settings: object) -> dict[str, object]:
    base: dict[str, object] = {
        "engine": "vllm",
        "model_variant": "bf16",
        "vllm.tensor-parallel-size": 8,
        "vllm.enable-expert-parallel": False,
        "vllm.max-model-len": 262144,
        "vllm.gpu-memory-utilization": 0.92,
        "vllm.enable-chunked-prefill": True,
        "vllm.max-num-batched-tokens[0]": 8192,
        "vllm.max-num-seqs": 1024,
        "vllm.enable-prefix-caching": True,
        "vllm.kv-cache-dtype": "auto",
        "vllm.moe-backend": "auto",
        "vllm.attention-backend": "auto",
        "vllm.performance-mode": "balanced",
        "vllm.async-scheduling": True,
    }
    base.update({f"vllm.{k.replace('_', '-')}": v for k, v in settings.items()})
    return base


def check(spec: StudySpec, params: dict[str, object], history: list[FrozenTrial] | None = None):  # type: ignore[no-untyped-def]
    checker = FeasibilityChecker(spec)
    candidate = candidate_from_params(spec, params)  # type: ignore[arg-type]
    return checker.check(resolve_candidate(candidate, spec.node_group), params, {}, history or [])


def test_engine_defaults_are_launched(spec: StudySpec) -> None:
    assert check(spec, vllm_params()).launch


def test_bf16_weights_at_tp4_are_rejected_by_the_memory_model(spec: StudySpec) -> None:
    verdict = check(spec, vllm_params(**{"tensor-parallel-size": 4, "data-parallel-size": 1}))
    assert not verdict.launch
    assert verdict.crash_class == "rejected:weights_oom"


def test_block_fp8_at_tp8_without_ep_is_rejected_by_the_static_rule(spec: StudySpec) -> None:
    params = vllm_params() | {"model_variant": "fp8"}
    verdict = check(spec, params)
    assert not verdict.launch and verdict.crash_class == "rejected:fp8_block_shard"
    with_ep = params | {"vllm.enable-expert-parallel": True}
    assert check(spec, with_ep).launch


def test_engine_argument_error_is_rejected_with_the_engine_text(spec: StudySpec) -> None:
    params = vllm_params(**{"max-num-seqs": 1024})
    params["vllm.max-num-batched-tokens[0]"] = 512
    verdict = check(spec, params)
    assert not verdict.launch
    assert "max_num_batched_tokens (512) must be greater than or equal to max_num_seqs" in (
        verdict.message
    )


def test_kv_boundary_is_left_to_the_engine(spec: StudySpec) -> None:
    # 262k context at 0.80 utilization is clearly too small for one request: rejected ...
    assert not check(spec, vllm_params(**{"gpu-memory-utilization": 0.8})).launch
    # ... while the defaults (just above the boundary) run.
    assert check(spec, vllm_params(**{"gpu-memory-utilization": 0.92})).launch


SEQS = IntDistribution(32, 1024, log=True)
BACKEND = CategoricalDistribution(["auto", "triton", "deep_gemm"])


def finished(number: int, seqs: int, backend: str, crashed: bool) -> FrozenTrial:
    params = {"engine": "vllm", "vllm.max-num-seqs": seqs, "vllm.moe-backend": backend}
    distributions: Mapping[str, optuna.distributions.BaseDistribution] = {
        "engine": CategoricalDistribution(["vllm", "sglang"]),
        "vllm.max-num-seqs": SEQS,
        "vllm.moe-backend": BACKEND,
    }
    trial = create_trial(
        state=TrialState.PRUNED if crashed else TrialState.COMPLETE,
        values=None if crashed else [1.0, 1.0],
        params=params,
        distributions=dict(distributions),
        user_attrs={"crash_class": "invalid:backend"} if crashed else {},
    )
    trial.number = number
    return trial


def history() -> list[FrozenTrial]:
    """deep_gemm always crashed (a hidden incompatibility); the others always ran."""
    trials = []
    for number, seqs in enumerate([32, 64, 128, 256, 512, 1024, 48, 96, 192]):
        backend = ("auto", "triton", "deep_gemm")[number % 3]
        trials.append(finished(number, seqs, backend, crashed=backend == "deep_gemm"))
    return trials


def distributions() -> dict[str, optuna.distributions.BaseDistribution]:
    return {
        "engine": CategoricalDistribution(["vllm", "sglang"]),
        "vllm.max-num-seqs": SEQS,
        "vllm.moe-backend": BACKEND,
    }


def test_learned_model_rejects_near_known_crashes() -> None:
    params = {"engine": "vllm", "vllm.max-num-seqs": 300, "vllm.moe-backend": "deep_gemm"}
    verdict = learned_verdict(params, distributions(), history())
    assert not verdict.launch
    assert verdict.crash_class == "rejected:learned"
    assert verdict.crash_probability is not None and verdict.crash_probability > 0.9


def test_learned_model_launches_where_evidence_says_it_runs() -> None:
    params = {"engine": "vllm", "vllm.max-num-seqs": 300, "vllm.moe-backend": "triton"}
    verdict = learned_verdict(params, distributions(), history())
    assert verdict.launch


def test_learned_model_needs_history_before_it_judges() -> None:
    params = {"engine": "vllm", "vllm.max-num-seqs": 300, "vllm.moe-backend": "deep_gemm"}
    assert learned_verdict(params, distributions(), history()[:4]).launch


def test_learned_model_ignores_other_engines() -> None:
    params = {"engine": "sglang", "sglang.max-running-requests": 300}
    assert learned_verdict(params, distributions(), history()).launch


def test_exact_repeat_of_a_crash_is_rejected() -> None:
    params = {"engine": "vllm", "vllm.max-num-seqs": 128, "vllm.moe-backend": "deep_gemm"}
    verdict = learned_verdict(params, distributions(), history())
    assert verdict.crash_class == "rejected:known_crash"


def test_threshold_tightens_with_crashes_and_loosens_with_rejections() -> None:
    calm = [finished(i, 64, "auto", crashed=False) for i in range(12)]
    crashing = [finished(i, 64, "deep_gemm", crashed=i % 2 == 0) for i in range(12)]
    rejecting = calm[:4] + [
        create_trial(
            state=TrialState.PRUNED,
            params={"engine": "vllm"},
            distributions={"engine": CategoricalDistribution(["vllm", "sglang"])},
            user_attrs={"crash_class": "rejected:learned"},
        )
        for _ in range(8)
    ]
    assert adaptive_threshold(crashing) < adaptive_threshold(calm)
    assert adaptive_threshold(rejecting) > adaptive_threshold(calm)
    for trials in (calm, crashing, rejecting):
        assert 0.55 <= adaptive_threshold(trials) <= 0.95


def tiny_params(**settings: object) -> dict[str, object]:
    """A candidate of the real-vLLM CPU space (tiny-qwen3-moe-cpu.yaml)."""
    base: dict[str, object] = {
        "engine": "vllm",
        "model_variant": "bf16",
        "vllm.VLLM_CPU_KVCACHE_SPACE": 1,
        "vllm.max-model-len": 2048,
        "vllm.max-num-seqs": 128,
        "vllm.enable-chunked-prefill": True,
        "vllm.max-num-batched-tokens[0]": 2048,
        "vllm.enable-prefix-caching": True,
        "vllm.enforce-eager": False,
        "vllm.dtype": "auto",
    }
    base.update({f"vllm.{k.replace('_', '-')}": v for k, v in settings.items()})
    return base


def ran(number: int, params: dict[str, object], crash_class: str | None) -> FrozenTrial:
    """A trial the runner ran: completed, or crashed with `crash_class`."""
    trial = create_trial(
        state=TrialState.PRUNED if crash_class else TrialState.COMPLETE,
        values=None if crash_class else [1.0, 1.0],
        params=params,
        distributions={key: CategoricalDistribution([value]) for key, value in params.items()},
        user_attrs={"crash_class": crash_class} if crash_class else {},
    )
    trial.number = number
    return trial


def test_a_refused_context_length_rules_out_every_longer_one_after_one_crash() -> None:
    tiny = load_spec("tiny-qwen3-moe-cpu.yaml")
    history = [
        ran(0, tiny_params(), None),
        ran(1, tiny_params(max_model_len=4096, max_num_seqs=8), "invalid:max_model_len"),
    ]
    # other settings differ, the context length is the same: the engine refuses it
    verdict = check(tiny, tiny_params(max_model_len=4096, enforce_eager=True), history)
    assert not verdict.launch
    assert verdict.crash_class == "rejected:known_crash"
    assert "trial 1" in verdict.message and "4096" in verdict.message
    # longer than the model's own limit: the static rule refuses it before history is asked
    longer = check(tiny, tiny_params(max_model_len=8192, enforce_eager=True), history)
    assert longer.crash_class == "rejected:max_model_len"
    # shorter is not proven to fail, and a crash of another kind proves nothing about length
    assert check(tiny, tiny_params(max_model_len=2048, enforce_eager=True), history).launch
    other = [history[0], ran(1, tiny_params(max_model_len=4096), "oom:runtime")]
    assert check(tiny, tiny_params(max_model_len=4096, enforce_eager=True), other).launch


def test_a_deterministic_crash_is_never_launched_twice_even_in_a_short_history() -> None:
    tiny = load_spec("tiny-qwen3-moe-cpu.yaml")
    params = tiny_params(max_num_seqs=8, dtype="bfloat16")
    for crash_class, rejected in (
        ("invalid:config", True),
        ("oom:weights", True),
        ("oom:runtime", False),  # under load: may not repeat, left to the learned model
        ("start:timeout", False),
    ):
        history = [ran(0, tiny_params(), None), ran(1, params, crash_class)]
        verdict = check(tiny, params, history)
        assert verdict.launch is not rejected, crash_class
        if rejected:
            assert verdict.crash_class == "rejected:known_crash"

"""Hand-made studies for the export and retune tests: fixed trials, stable golden files.

The trials carry what a study records (parameters, objective values, every benchmark metric,
the runner's instance shape, the serve command) without running a search, so the golden files
change only when the export formats or the engines' rendering change.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from optimizer.space import candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.spec.models import StudySpec
from runners.engines import resolve_candidate
from runners.types import Distribution, Metrics, SettingValue

Trials = list[tuple[dict[str, SettingValue], tuple[float, float] | None, dict[str, object]]]
"""(parameters, objective values or None for a crash, extras: baseline, shape, crash, ...)"""

QWEN3_MOE_TRIALS: Trials = [
    (  # 0: the baseline, vLLM defaults with TP8
        {
            "engine": "vllm", "model_variant": "bf16", "vllm.tensor-parallel-size": 8,
            "vllm.enable-expert-parallel": False, "vllm.max-model-len": 262144,
            "vllm.gpu-memory-utilization": 0.92, "vllm.enable-chunked-prefill": True,
            "vllm.max-num-batched-tokens[0]": 8192, "vllm.max-num-seqs": 1024,
            "vllm.enable-prefix-caching": True, "vllm.kv-cache-dtype": "auto",
            "vllm.moe-backend": "auto", "vllm.attention-backend": "auto",
            "vllm.performance-mode": "balanced", "vllm.async-scheduling": True,
        },
        (4010.6, 231.4),
        {"baseline": True, "shape": (1, 8)},
    ),
    (  # 1: vLLM FP8 TP4 x 2: the highest throughput
        {
            "engine": "vllm", "model_variant": "fp8", "vllm.tensor-parallel-size": 4,
            "vllm.data-parallel-size": 1, "vllm.enable-expert-parallel": True,
            "vllm.max-model-len": 32768, "vllm.gpu-memory-utilization": 0.9,
            "vllm.enable-chunked-prefill": True, "vllm.max-num-batched-tokens[0]": 12000,
            "vllm.max-num-seqs": 512, "vllm.enable-prefix-caching": False,
            "vllm.kv-cache-dtype": "fp8", "vllm.moe-backend": "auto",
            "vllm.attention-backend": "FLASHINFER", "vllm.performance-mode": "throughput",
            "vllm.async-scheduling": True,
        },
        (5305.9, 300.9),
        {"shape": (2, 4)},
    ),
    (  # 2: SGLang FP8 TP4 EP4, the lowest latency of the front: the recommendation
        {
            "engine": "sglang", "model_variant": "fp8", "sglang.tp-size": 4,
            "sglang.ep-size[0]": 4, "sglang.context-length": 32768,
            "sglang.mem-fraction-static": 0.85, "sglang.chunked-prefill-size": 4096,
            "sglang.max-running-requests": 256, "sglang.disable-radix-cache": True,
            "sglang.kv-cache-dtype": "fp8_e4m3", "sglang.moe-runner-backend": "auto",
            "sglang.attention-backend": "fa3", "sglang.schedule-conservativeness": 0.8,
        },
        (4883.7, 140.2),
        {"shape": (2, 4)},
    ),
    (  # 3: TensorRT-LLM FP8 TP4 EP4, between the two
        {
            "engine": "trtllm", "model_variant": "fp8", "trtllm.tp_size": 4,
            "trtllm.ep_size[0]": 4, "trtllm.max_seq_len": 32768, "trtllm.max_batch_size": 1436,
            "trtllm.max_num_tokens": 3108, "trtllm.free_gpu_memory_fraction": 0.75,
            "trtllm.enable_chunked_prefill": True,
            "trtllm.kv_cache_config.enable_block_reuse": False,
            "trtllm.kv_cache_config.dtype": "fp8", "trtllm.moe_config.backend": "CUTLASS",
            "trtllm.disable_overlap_scheduler": False,
            "trtllm.scheduler_config.capacity_scheduler_policy": "MAX_UTILIZATION",
        },
        (5033.7, 157.5),
        {"shape": (2, 4)},
    ),
    (  # 4: ran out of memory under load
        {
            "engine": "vllm", "model_variant": "fp8", "vllm.tensor-parallel-size": 4,
            "vllm.data-parallel-size": 2, "vllm.enable-expert-parallel": False,
            "vllm.max-model-len": 262144, "vllm.gpu-memory-utilization": 0.95,
            "vllm.enable-chunked-prefill": True, "vllm.max-num-batched-tokens[0]": 32768,
            "vllm.max-num-seqs": 1024, "vllm.enable-prefix-caching": True,
            "vllm.kv-cache-dtype": "auto", "vllm.moe-backend": "auto",
            "vllm.attention-backend": "auto", "vllm.performance-mode": "balanced",
            "vllm.async-scheduling": True,
        },
        None,
        {"crash": "oom:runtime"},
    ),
]  # fmt: skip

MINDIE_TRIALS: Trials = [
    (
        {
            "engine": "mindie", "model_variant": "bf16", "mindie.worldSize": 4,
            "mindie.maxSeqLen": 8192, "mindie.maxInputTokenLen": 4096,
            "mindie.maxBatchSize": 300, "mindie.maxPrefillBatchSize": 16,
            "mindie.maxPrefillTokens": 8192,
        },
        (2100.0, 60.0),
        {"shape": (2, 4)},
    ),
]  # fmt: skip


def metrics_of(throughput: float, latency: float, gpus: int) -> dict[str, float]:
    """Every benchmark metric of a run with this throughput and p99 TPOT (made up, stable)."""

    def dist(p99: float) -> Distribution:
        return Distribution(
            mean=p99 * 0.5, median=p99 * 0.45, std=p99 * 0.2, p90=p99 * 0.8, p95=p99 * 0.9,
            p99=p99,
        )  # fmt: skip

    duration = 200_000 / throughput
    return Metrics(
        completed=1000,
        failed=0,
        duration_s=duration,
        total_input_tokens=217_000,
        total_output_tokens=200_000,
        request_throughput_req_s=1000 / duration,
        output_throughput_tok_s=throughput,
        total_token_throughput_tok_s=417_000 / duration,
        num_gpus=gpus,
        ttft_ms=dist(latency * 40),
        tpot_ms=dist(latency),
        itl_ms=dist(latency * 1.1),
        e2el_ms=dist(latency * 200),
    ).flat()


def make_study(
    directory: Path,
    space: str | Path,
    trials: Trials,
    name: str | None = None,
) -> tuple[optuna.Study, str, StudySpec]:
    """A SQLite study under `directory`/studies with these trials; (study, url, spec)."""
    spec = load_spec(space)
    name = name or spec.name
    (directory / "studies").mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'studies' / f'{name}.db'}"
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([spec.objectives.throughput.label, spec.objectives.latency.label])
    study.set_user_attr("space", str(space))
    choices: dict[str, list[SettingValue]] = {}
    for params, _, _ in trials:
        for key, value in params.items():
            if value not in choices.setdefault(key, []):
                choices[key].append(value)
    distributions = {k: CategoricalDistribution(tuple(v)) for k, v in choices.items()}
    for params, values, extra in trials:
        study.add_trial(_trial(spec, params, values, extra, distributions))
    return study, url, spec


def _trial(
    spec: StudySpec,
    params: Mapping[str, SettingValue],
    values: tuple[float, float] | None,
    extra: Mapping[str, object],
    all_distributions: Mapping[str, CategoricalDistribution],
) -> optuna.trial.FrozenTrial:
    candidate = candidate_from_params(spec, params)
    resolved = resolve_candidate(candidate, spec.node_group)
    attrs: dict[str, object] = {
        "engine": candidate.engine,
        "serve_command": resolved.serve_command,
    }
    if extra.get("baseline"):
        attrs["baseline"] = True
    distributions = {k: all_distributions[k] for k in params}
    if values is None:
        attrs.update({"crash_class": str(extra["crash"]), "crash_message": "CUDA out of memory"})
        return create_trial(
            state=TrialState.PRUNED, params=dict(params), distributions=distributions,
            user_attrs=attrs,
        )  # fmt: skip
    shape = extra["shape"]
    assert isinstance(shape, tuple)
    replicas, gpus = shape
    attrs["runner"] = {"name": "sim", "wall_s": 0.05, "replicas": replicas,
                       "gpus_per_replica": gpus}  # fmt: skip
    attrs["metrics"] = metrics_of(values[0], values[1], replicas * gpus)
    constraints = extra.get("constraints")
    return create_trial(
        values=list(values), params=dict(params), distributions=distributions, user_attrs=attrs,
        constraints=dict(constraints) if isinstance(constraints, dict) else None,
    )  # fmt: skip

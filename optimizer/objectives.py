"""Objective values from `Metrics`, as the space file's `objectives` section defines them.

Two objectives, in this order: throughput (maximized) and a latency percentile (minimized).
Throughput is for the whole node group, or divided by the GPUs used when `scope: gpu`, so that
configurations of different sizes compare fairly. SLOs become constraint values in Optuna's
convention: a trial is feasible when every value is <= 0 (value - max, or min - value).
"""

from __future__ import annotations

from optimizer.spec.models import ObjectivesSection, Slo
from runners.types import Metrics

DIRECTIONS = ("maximize", "minimize")


def objective_values(metrics: Metrics, objectives: ObjectivesSection) -> tuple[float, float]:
    return throughput_value(metrics, objectives), latency_value(metrics, objectives)


def throughput_value(metrics: Metrics, objectives: ObjectivesSection) -> float:
    spec = objectives.throughput
    by_metric = {
        "output_throughput": metrics.output_throughput_tok_s,
        "total_token_throughput": metrics.total_token_throughput_tok_s,
        "request_throughput": metrics.request_throughput_req_s,
    }
    value = by_metric[spec.metric]
    return value / metrics.num_gpus if spec.scope == "gpu" else value


def latency_value(metrics: Metrics, objectives: ObjectivesSection) -> float:
    spec = objectives.latency
    return metrics.latency(spec.metric).percentile(spec.percentile)


def metric_names(objectives: ObjectivesSection) -> list[str]:
    """Names shown by optuna-dashboard for the two objectives."""
    return [objectives.throughput.label, objectives.latency.label]


def slo_metric(metrics: Metrics, metric: str) -> float:
    """The value of one SLO metric name (a vllm bench JSON key or a derived one)."""
    flat = metrics.flat()
    if metric == "failed_fraction":
        return metrics.failed / max(1, metrics.completed + metrics.failed)
    if metric.endswith("_per_gpu"):
        return flat[metric.removesuffix("_per_gpu")] / max(1, metrics.num_gpus)
    return flat[metric]


def constraint_values(metrics: Metrics, slos: list[Slo]) -> dict[str, float]:
    """One constraint per SLO, keyed by its readable name; <= 0 means the SLO is met."""
    values: dict[str, float] = {}
    for slo in slos:
        value = slo_metric(metrics, slo.metric)
        values[slo.name] = value - slo.max if slo.max is not None else (slo.min or 0.0) - value
    return values

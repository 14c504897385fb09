"""Objective values from `Metrics`, as the space file's `objectives` section defines them.

Two objectives, in this order: throughput (maximized) and a latency percentile (minimized).
Throughput is for the whole node group, or divided by the GPUs used when `scope: gpu`, so that
configurations of different sizes compare fairly.
"""

from __future__ import annotations

from optimizer.spec import ObjectivesSection
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

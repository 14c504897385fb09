"""What the simulator expects of one configuration before it runs: metrics, spread, crash odds.

Place in the data flow: a predictor (the plain simulator, or the simulator corrected by a
calibration fitted from measured runs) turns a resolved `ServingConfig` and the trial's
`Workload` into a `Prediction`. The optimizer's screening scores candidates by it, the study
stores it on the trial before the trial runs, and the report sets it against the measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

from runners.types import Metrics, WorkloadRun


@dataclass(frozen=True)
class Prediction:
    """The expected outcome of one configuration.

    `metrics` is the expected benchmark result when the configuration runs (None when the
    simulator says it cannot run at all); `log_sigma` is the one-sigma uncertainty of every
    throughput and latency in it, in natural-log units (0.1 = about +/-10%);
    `crash_probability` is the chance that the engine fails to start or fails under load;
    `source` says which simulator made it ("shipped calibration", "calibrated on 4 runs", ...);
    `workloads` is each workload expected, with its load search's curve, when the trial has a
    load search or several workloads (as `TrialOutcome.workloads`; `metrics` is then the
    first's), empty otherwise.
    """

    metrics: Metrics | None
    log_sigma: float
    crash_probability: float
    source: str
    workloads: tuple[WorkloadRun, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.crash_probability <= 1.0:
            raise ValueError(f"crash_probability {self.crash_probability} is not in [0, 1]")
        if self.log_sigma < 0.0:
            raise ValueError(f"log_sigma {self.log_sigma} is negative")


__all__ = ["Prediction"]
